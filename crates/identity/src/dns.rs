//! Names learned from DNS answers in the capture itself: every A/AAAA
//! record a DNS response carried says "this address answered for this
//! name at this time". [`DnsLearner`] keeps, per address, the history of
//! names it was seen for, and answers [`DnsLearner::name_for`] (the name
//! an address had at a given time) for the [`crate::Resolver`].
//!
//! The name kept is the one the client asked for: an answer
//! `www.googleapis.com CNAME googleapis.l.google.com`, `googleapis.l.google.com
//! A 142.250.1.1` teaches `142.250.1.1 → www.googleapis.com`, because that is
//! the name in the client's configuration and in its `Host` header.
//!
//! Two ways to use it (see the crate documentation for which the indexer
//! should pick): streaming, where each call is learned from and then
//! resolved in arrival order; and two passes, where the DNS calls of the
//! whole capture are learned first (shards each fill a learner, then
//! [`DnsLearner::merge`]) and every call is resolved afterwards. Sightings
//! are kept sorted by time whatever order they arrive in, so both modes
//! give the same answer for every call whose DNS answer came before it.

use std::net::IpAddr;
use std::sync::Arc;

use trawl_model::Call;

/// How far after `ts` a sighting may be and still name an address that
/// had no sighting at or before `ts`. Clients resolve before they connect,
/// so the answer normally precedes the call; it can follow it when
/// captures of several nodes are merged (their clocks differ by
/// milliseconds under NTP; 5 s leaves room for a badly synced node) or
/// when a call's timestamp is its response's and the request was lost.
/// Longer would name a connection after an answer that came much later,
/// possibly after its address was handed to someone else.
pub const DNS_GRACE_NS: i64 = 5_000_000_000;

/// Names remembered per address. A CDN address answers for many names and
/// a long capture sees it flip between them; the 32 most recent changes
/// cover the names its connections used, and a hostile resolver cannot
/// grow one address's history without bound.
pub const MAX_SIGHTINGS_PER_IP: usize = 32;

/// Addresses remembered in all. A busy cluster's DNS answers name tens of
/// thousands of addresses in an hour; one million (about 100 MB of
/// history at worst) leaves a wide margin while bounding what traffic can
/// make the indexer hold. Answers for new addresses past the cap are
/// counted in [`DnsStats::ips_dropped`] and ignored.
pub const MAX_LEARNED_IPS: usize = 1 << 20;

/// Longest CNAME chain followed back to the question. Resolvers give up
/// well before this (BIND follows 16 at most); a longer chain in an answer
/// is a loop or garbage.
pub const MAX_CNAME_HOPS: usize = 16;

/// One address seen answering for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The name asked for, lower case, without the trailing dot.
    pub name: Arc<str>,
    /// When the answer was seen (the DNS response's time), ns since the epoch.
    pub seen_ns: i64,
    /// The record's TTL in seconds. Kept, not enforced: a connection opened
    /// within the TTL may live for hours, and the answer still names its
    /// server.
    pub ttl: u32,
}

/// Counters, for the indexer's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// DNS responses with at least one A/AAAA answer that was learned.
    pub responses: u64,
    /// A/AAAA records learned (including repeats of a known name).
    pub addresses: u64,
    /// Answers ignored because [`MAX_LEARNED_IPS`] addresses were known.
    pub ips_dropped: u64,
    /// A/AAAA records whose data was not an address of their type.
    pub bad_records: u64,
    /// CNAME chains longer than [`MAX_CNAME_HOPS`] (loops); the record was
    /// learned under its own owner name.
    pub cname_loops: u64,
}

/// Address → name history, learned from DNS calls.
#[derive(Clone, Debug)]
pub struct DnsLearner {
    by_ip: foldhash::HashMap<IpAddr, Vec<Sighting>>,
    /// One allocation per distinct name, shared by every address.
    names: foldhash::HashSet<Arc<str>>,
    stats: DnsStats,
    /// [`MAX_LEARNED_IPS`] unless a test sets it lower.
    max_ips: usize,
}

impl Default for DnsLearner {
    fn default() -> Self {
        DnsLearner::with_max_ips(MAX_LEARNED_IPS)
    }
}

impl DnsLearner {
    pub fn new() -> DnsLearner {
        DnsLearner::default()
    }

    /// A learner that remembers at most `max_ips` addresses (at most
    /// [`MAX_LEARNED_IPS`]).
    pub fn with_max_ips(max_ips: usize) -> DnsLearner {
        DnsLearner {
            by_ip: foldhash::HashMap::default(),
            names: foldhash::HashSet::default(),
            stats: DnsStats::default(),
            max_ips: max_ips.min(MAX_LEARNED_IPS),
        }
    }

    /// Learns the A/AAAA answers of a DNS call; any other call is ignored
    /// (cheaply: one check of an empty list).
    pub fn learn(&mut self, call: &Call) {
        if call.dns_answers.is_empty() {
            return;
        }
        let elapsed_ns = call.elapsed_time.saturating_mul(1_000);
        let seen_ns = call.timestamp.saturating_add(elapsed_ns);
        let mut learned = false;
        for answer in &call.dns_answers {
            let ip = match answer.rtype.as_str() {
                "A" => answer.data.parse::<std::net::Ipv4Addr>().map(IpAddr::V4),
                "AAAA" => answer.data.parse::<std::net::Ipv6Addr>().map(IpAddr::V6),
                _ => continue,
            };
            let Ok(ip) = ip else {
                self.stats.bad_records += 1;
                continue;
            };
            let asked = self.question_for(call, &answer.name);
            if self.insert(ip, asked, seen_ns, answer.ttl) {
                self.stats.addresses += 1;
                learned = true;
            }
        }
        if learned {
            self.stats.responses += 1;
        }
    }

    /// The head of the CNAME chain that ends at `owner`: walk CNAME records
    /// backwards (target → owner) until no record points at the name.
    fn question_for<'c>(&mut self, call: &'c Call, owner: &'c str) -> &'c str {
        let mut name = owner;
        for _ in 0..MAX_CNAME_HOPS {
            let previous = call
                .dns_answers
                .iter()
                .find(|a| a.rtype == "CNAME" && eq_name(&a.data, name));
            match previous {
                Some(cname) => name = &cname.name,
                None => return name,
            }
        }
        self.stats.cname_loops += 1;
        owner
    }

    /// Records one sighting; false when the address table is full.
    fn insert(&mut self, ip: IpAddr, name: &str, seen_ns: i64, ttl: u32) -> bool {
        if self.by_ip.len() >= self.max_ips && !self.by_ip.contains_key(&ip) {
            self.stats.ips_dropped += 1;
            return false;
        }
        let history = self.by_ip.entry(ip).or_default();
        let pos = history.partition_point(|s| s.seen_ns <= seen_ns);
        // The same name as the sighting just before: nothing changed.
        if let Some(prev) = pos.checked_sub(1).and_then(|p| history.get(p))
            && eq_name(&prev.name, name)
        {
            return true;
        }
        // The same name as the sighting just after: it held from earlier.
        if let Some(next) = history.get_mut(pos)
            && eq_name(&next.name, name)
        {
            next.seen_ns = seen_ns;
            next.ttl = ttl;
            return true;
        }
        let name = intern(&mut self.names, name);
        history.insert(pos, Sighting { name, seen_ns, ttl });
        if history.len() > MAX_SIGHTINGS_PER_IP {
            history.remove(0);
        }
        true
    }

    /// The name `ip` answered for at `ts_ns`: the latest sighting at or
    /// before `ts_ns`; failing that, the first sighting at most
    /// [`DNS_GRACE_NS`] after it; else `None`. Never allocates.
    pub fn name_for(&self, ip: IpAddr, ts_ns: i64) -> Option<&str> {
        let history = self.by_ip.get(&ip)?;
        let pos = history.partition_point(|s| s.seen_ns <= ts_ns);
        match pos.checked_sub(1) {
            Some(p) => history.get(p).map(|s| &*s.name),
            None => history
                .first()
                .filter(|s| s.seen_ns.saturating_sub(ts_ns) <= DNS_GRACE_NS)
                .map(|s| &*s.name),
        }
    }

    /// Every name `ip` was seen for, oldest first.
    pub fn sightings(&self, ip: IpAddr) -> &[Sighting] {
        self.by_ip.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// Adds another learner's sightings (a shard's, in the two-pass mode).
    /// The result is the same whatever order learners are merged in.
    pub fn merge(&mut self, other: &DnsLearner) {
        for (ip, history) in &other.by_ip {
            for s in history {
                // A full table counts the drop in `ips_dropped`.
                let _ = self.insert(*ip, &s.name, s.seen_ns, s.ttl);
            }
        }
        let o = other.stats;
        let st = &mut self.stats;
        st.responses += o.responses;
        st.addresses += o.addresses;
        st.bad_records += o.bad_records;
        st.cname_loops += o.cname_loops;
        st.ips_dropped += o.ips_dropped;
    }

    /// Addresses with at least one name.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    pub fn stats(&self) -> DnsStats {
        self.stats
    }
}

/// DNS names compare without case (RFC 4343), and a trailing dot is the
/// same name.
fn eq_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The shared, lower-cased copy of `name`.
fn intern(names: &mut foldhash::HashSet<Arc<str>>, name: &str) -> Arc<str> {
    let name = name.trim_end_matches('.');
    let lower: std::borrow::Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    };
    if let Some(known) = names.get(&*lower) {
        return Arc::clone(known);
    }
    let shared: Arc<str> = Arc::from(&*lower);
    names.insert(Arc::clone(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_model::{DnsAnswer, Protocol};

    fn rr(name: &str, rtype: &str, data: &str, ttl: u32) -> DnsAnswer {
        DnsAnswer {
            name: name.into(),
            rtype: rtype.into(),
            data: data.into(),
            ttl,
        }
    }

    fn response(ts: i64, question: &str, answers: Vec<DnsAnswer>) -> Call {
        let mut c = Call::new(Protocol::Dns);
        c.timestamp = ts;
        c.elapsed_time = 1_000; // 1 ms
        c.dns_response = true;
        c.dns_questions = vec![question.into()];
        c.dns_answers = answers;
        c
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_and_aaaa_records_name_their_address_from_the_response_time() {
        let mut l = DnsLearner::new();
        l.learn(&response(
            100 * S,
            "api.stripe.com",
            vec![
                rr("api.stripe.com", "A", "192.0.2.10", 60),
                rr("api.stripe.com", "AAAA", "2001:db8::10", 60),
            ],
        ));
        let seen = 100 * S + 1_000_000;
        assert_eq!(l.name_for(ip("192.0.2.10"), seen), Some("api.stripe.com"));
        assert_eq!(
            l.name_for(ip("2001:db8::10"), 200 * S),
            Some("api.stripe.com")
        );
        assert_eq!(l.sightings(ip("192.0.2.10"))[0].seen_ns, seen);
        assert_eq!(l.sightings(ip("192.0.2.10"))[0].ttl, 60);
        assert_eq!(l.name_for(ip("192.0.2.11"), seen), None);
        assert_eq!(l.stats().responses, 1);
        assert_eq!(l.stats().addresses, 2);
    }

    #[test]
    fn cname_chains_lead_back_to_the_question() {
        // The chain the lab generator and real resolvers return for
        // login.microsoftonline.com: two CNAMEs, then the address, in order
        // and (second case) shuffled, with mixed case and a trailing dot.
        let chain = vec![
            rr(
                "login.microsoftonline.com",
                "CNAME",
                "login.mso.msidentity.com",
                300,
            ),
            rr(
                "login.mso.msidentity.com",
                "CNAME",
                "ak.privatelink.msidentity.com",
                300,
            ),
            rr("ak.privatelink.msidentity.com", "A", "20.190.1.1", 300),
        ];
        let mut l = DnsLearner::new();
        l.learn(&response(S, "login.microsoftonline.com", chain.clone()));
        assert_eq!(
            l.name_for(ip("20.190.1.1"), 2 * S),
            Some("login.microsoftonline.com")
        );

        let shuffled = vec![
            rr("AK.privatelink.msidentity.com", "A", "20.190.1.2", 300),
            rr(
                "login.mso.msidentity.com",
                "CNAME",
                "ak.privatelink.msidentity.com.",
                300,
            ),
            rr(
                "Login.MicrosoftOnline.com",
                "CNAME",
                "login.mso.msidentity.com",
                300,
            ),
        ];
        l.learn(&response(S, "Login.MicrosoftOnline.com", shuffled));
        assert_eq!(
            l.name_for(ip("20.190.1.2"), 2 * S),
            Some("login.microsoftonline.com")
        );
    }

    #[test]
    fn cname_loops_stop_at_the_owner() {
        let looped = vec![
            rr("a.example", "CNAME", "b.example", 30),
            rr("b.example", "CNAME", "a.example", 30),
            rr("b.example", "A", "192.0.2.1", 30),
        ];
        let mut l = DnsLearner::new();
        l.learn(&response(S, "a.example", looped));
        assert_eq!(l.name_for(ip("192.0.2.1"), 2 * S), Some("b.example"));
        assert_eq!(l.stats().cname_loops, 1);
    }

    #[test]
    fn bad_and_other_records_are_skipped() {
        let mut l = DnsLearner::new();
        l.learn(&response(
            S,
            "x.example",
            vec![
                rr("x.example", "A", "2001:db8::1", 30), // an AAAA's data in an A
                rr("x.example", "TXT", "\"hello\"", 30),
                rr("x.example", "AAAA", "not-an-address", 30),
            ],
        ));
        assert!(l.is_empty());
        assert_eq!(l.stats().bad_records, 2);
        assert_eq!(l.stats().responses, 0);
    }

    #[test]
    fn the_name_in_force_at_a_time_wins_and_early_calls_get_a_grace() {
        let mut l = DnsLearner::new();
        let addr = ip("192.0.2.50");
        // Learned out of order, as shards deliver them.
        l.learn(&response(
            300 * S,
            "new.example",
            vec![rr("new.example", "A", "192.0.2.50", 30)],
        ));
        l.learn(&response(
            100 * S,
            "old.example",
            vec![rr("old.example", "A", "192.0.2.50", 30)],
        ));
        let ms = 1_000_000;
        assert_eq!(l.name_for(addr, 100 * S + ms), Some("old.example"));
        assert_eq!(l.name_for(addr, 299 * S), Some("old.example"));
        assert_eq!(l.name_for(addr, 300 * S + ms), Some("new.example"));
        // Before the first sighting: within the grace window only.
        assert_eq!(
            l.name_for(addr, 100 * S + ms - DNS_GRACE_NS),
            Some("old.example")
        );
        assert_eq!(l.name_for(addr, 100 * S + ms - DNS_GRACE_NS - 1), None);
    }

    #[test]
    fn repeats_do_not_grow_history_and_history_is_capped() {
        let mut l = DnsLearner::new();
        let addr = ip("192.0.2.60");
        for i in 0..10 {
            l.learn(&response(
                i * S,
                "same.example",
                vec![rr("same.example", "A", "192.0.2.60", 30)],
            ));
        }
        assert_eq!(l.sightings(addr).len(), 1);
        // A repeat that comes earlier (out of order) moves the start back.
        l.learn(&response(
            -5 * S,
            "same.example",
            vec![rr("same.example", "A", "192.0.2.60", 30)],
        ));
        assert_eq!(l.sightings(addr).len(), 1);
        assert_eq!(l.name_for(addr, -4 * S), Some("same.example"));
        for i in 0..100 {
            let name = format!("n{}.example", i % 2);
            l.learn(&response(
                100 * S + i * S,
                &name,
                vec![rr(&name, "A", "192.0.2.60", 30)],
            ));
        }
        assert_eq!(l.sightings(addr).len(), MAX_SIGHTINGS_PER_IP);
        assert_eq!(l.name_for(addr, 199 * S + S / 2), Some("n1.example"));
    }

    #[test]
    fn addresses_past_the_cap_are_counted_and_ignored() {
        let mut l = DnsLearner::with_max_ips(2);
        for n in 1..=3 {
            let addr = format!("192.0.2.{n}");
            l.learn(&response(
                n * S,
                "x.example",
                vec![rr("x.example", "A", &addr, 30)],
            ));
        }
        // A known address still learns new names.
        l.learn(&response(
            9 * S,
            "y.example",
            vec![rr("y.example", "A", "192.0.2.1", 30)],
        ));
        assert_eq!(l.len(), 2);
        assert_eq!(l.name_for(ip("192.0.2.3"), 10 * S), None);
        assert_eq!(l.name_for(ip("192.0.2.1"), 10 * S), Some("y.example"));
        assert_eq!(l.stats().ips_dropped, 1);
        assert_eq!(l.stats().addresses, 3);
    }

    #[test]
    fn merging_shards_equals_learning_everything() {
        let calls: Vec<Call> = (0..20)
            .map(|i| {
                let name = format!("s{}.example", i % 3);
                let addr = format!("192.0.2.{}", i % 4);
                response(i * S, &name, vec![rr(&name, "A", &addr, 30)])
            })
            .collect();
        let mut all = DnsLearner::new();
        calls.iter().for_each(|c| all.learn(c));
        let (mut a, mut b) = (DnsLearner::new(), DnsLearner::new());
        for (i, c) in calls.iter().enumerate().rev() {
            if i % 2 == 0 { a.learn(c) } else { b.learn(c) }
        }
        b.merge(&a);
        assert_eq!(b.stats(), all.stats());
        for n in 0..4 {
            let addr = ip(&format!("192.0.2.{n}"));
            assert_eq!(all.sightings(addr), b.sightings(addr), "{addr}");
        }
        assert_eq!(b.stats().responses, 20);
    }
}
