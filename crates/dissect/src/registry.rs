//! The protocols trawl dissects, in one plain list. Adding a protocol adds
//! one line here; detection tries entries whose ports match first, then
//! the rest, in this order.

use crate::protocols::{dns, http1};
use crate::seam::ProtocolEntry;

pub static PROTOCOLS: &[ProtocolEntry] = &[http1::PROTOCOL, dns::PROTOCOL];
