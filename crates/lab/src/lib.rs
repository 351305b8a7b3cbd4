//! Reproducible traffic for trawl's tests and benchmarks. For now this is
//! [`pcapgen`], a deterministic generator of HTTP/1.1 and DNS captures with
//! their ground truth; scenarios with real services in network namespaces
//! come later. Used by the `trawl-lab` binary, `bench/` scripts and
//! end-to-end tests.

pub mod pcapgen;

pub use pcapgen::{
    CallProtocol, GenConfig, GenSummary, GeneratedCall, generate, generate_with_calls,
};
