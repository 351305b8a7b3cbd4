//! IP/port/time → identity. [`Resolver`] indexes validated [`Workloads`]
//! by IP and holds the names a [`DnsLearner`] learned; [`Resolver::resolve`]
//! answers for one endpoint and [`Resolver::apply`] fills a [`Call`]'s
//! identity fields. The indexer calls `apply` once per call, millions of
//! times per capture, so an address nobody knows costs one hash lookup in
//! each table and allocates nothing.
//!
//! Precedence: a pod entry, then a service entry, then an external entry,
//! then a name learned from DNS. Among entries of one kind for the same IP
//! only those valid at the call's time and serving its port count; a
//! port-specific entry beats a port-less one, then the latest
//! `valid_from` wins, then the entry written first.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use trawl_model::{Call, Endpoint, Resolution};

use crate::dns::DnsLearner;
use crate::workloads::{Workload, WorkloadKind, Workloads};

/// What resolved an endpoint, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Pod,
    Service,
    External,
    Dns,
}

/// Who an endpoint is, borrowed from the resolver: no allocation.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// The strongest thing that matched; it supplies the name.
    pub source: Source,
    pub pod: Option<&'a Workload>,
    /// A service entry matching the address itself (a ClusterIP).
    pub service_entry: Option<&'a Workload>,
    pub external: Option<&'a Workload>,
    /// The name the address answered for in DNS at that time, if any,
    /// whatever else resolved it.
    pub dns: Option<&'a str>,
}

impl<'a> Identity<'a> {
    fn strongest(&self) -> Option<&'a Workload> {
        self.pod.or(self.service_entry).or(self.external)
    }

    /// The pod's name, else the service's, else the external entry's, else
    /// the DNS name.
    pub fn name(&self) -> &'a str {
        match self.strongest() {
            Some(w) => &w.name,
            None => self.dns.unwrap_or(""),
        }
    }

    /// The namespace of whatever resolved it; for a DNS name of an
    /// in-cluster service (`cart.shop.svc.cluster.local`), its namespace.
    pub fn namespace(&self) -> &'a str {
        match self.strongest() {
            Some(w) => &w.namespace,
            None => self.dns.and_then(cluster_service).map_or("", |(_, ns)| ns),
        }
    }

    /// `(name, namespace)` of the pod.
    pub fn pod(&self) -> Option<(&'a str, &'a str)> {
        self.pod.map(|p| (p.name.as_str(), p.namespace.as_str()))
    }

    /// `(name, namespace)` of the service: the one the pod backs, else the
    /// service entry that matched the address, else the service an
    /// in-cluster DNS name names (only when nothing in the workloads file
    /// matched).
    pub fn service(&self) -> Option<(&'a str, &'a str)> {
        if let Some(p) = self.pod
            && let Some(svc) = &p.service
        {
            return Some((svc.as_str(), p.namespace.as_str()));
        }
        if let Some(s) = self.service_entry {
            return Some((s.name.as_str(), s.namespace.as_str()));
        }
        if self.strongest().is_none() {
            return self.dns.and_then(cluster_service);
        }
        None
    }

    /// Labels of whatever resolved it (empty for DNS).
    pub fn labels(&self) -> Option<&'a BTreeMap<String, String>> {
        self.strongest().map(|w| &w.labels)
    }

    /// The record's `resolved_by`. The model has no value for external
    /// entries yet; they record `service`, the closest: a name an operator
    /// gave to an address, like a Service without a selector.
    pub fn resolved_by(&self) -> Resolution {
        match self.source {
            Source::Pod => Resolution::Pod,
            Source::Service => Resolution::Service,
            Source::External => Resolution::External,
            Source::Dns => Resolution::Dns,
        }
    }
}

/// `(service, namespace)` from a Kubernetes service DNS name,
/// `<service>.<namespace>.svc.<cluster domain>`.
fn cluster_service(name: &str) -> Option<(&str, &str)> {
    let mut labels = name.split('.');
    let (service, namespace, svc) = (labels.next()?, labels.next()?, labels.next()?);
    let has_domain = labels.next().is_some_and(|d| !d.is_empty());
    (svc == "svc" && has_domain && !service.is_empty() && !namespace.is_empty())
        .then_some((service, namespace))
}

#[derive(Debug, Default)]
struct Index {
    entries: Vec<Workload>,
    /// Entry positions per address, in file order. Usually one or two.
    by_ip: foldhash::HashMap<IpAddr, Vec<usize>>,
}

/// Resolves endpoints to identities. Cheap to share across threads
/// (`&Resolver` is `Sync`); cloning copies the learned DNS names but
/// shares the workloads.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    index: Arc<Index>,
    dns: DnsLearner,
}

impl Resolver {
    /// A resolver over `workloads`, with no DNS names yet.
    pub fn new(workloads: Workloads) -> Resolver {
        let entries = workloads.entries().to_vec();
        let mut by_ip: foldhash::HashMap<IpAddr, Vec<usize>> = foldhash::HashMap::default();
        for (i, w) in entries.iter().enumerate() {
            for ip in &w.ips {
                let ids = by_ip.entry(*ip).or_default();
                if ids.last() != Some(&i) {
                    ids.push(i);
                }
            }
        }
        Resolver {
            index: Arc::new(Index { entries, by_ip }),
            dns: DnsLearner::new(),
        }
    }

    /// Replaces the DNS names (the two-pass mode: names learned from the
    /// whole capture first).
    pub fn with_dns(mut self, dns: DnsLearner) -> Resolver {
        self.dns = dns;
        self
    }

    pub fn dns(&self) -> &DnsLearner {
        &self.dns
    }

    pub fn workloads(&self) -> &[Workload] {
        &self.index.entries
    }

    /// Streaming mode: learns the DNS answers a call carries.
    pub fn learn(&mut self, call: &Call) {
        self.dns.learn(call);
    }

    /// Streaming mode: learns from the call, then fills its identities.
    pub fn learn_and_apply(&mut self, call: &mut Call) {
        self.dns.learn(call);
        self.apply(call);
    }

    /// The identity of `ip:port` at `ts_ns`, or `None` when nothing knows
    /// the address. Allocates nothing.
    pub fn resolve(&self, ip: IpAddr, port: u16, ts_ns: i64) -> Option<Identity<'_>> {
        let dns = self.dns.name_for(ip, ts_ns);
        let (pod, service_entry, external) = match self.index.by_ip.get(&ip) {
            Some(ids) => (
                self.best(ids, WorkloadKind::Pod, port, ts_ns),
                self.best(ids, WorkloadKind::Service, port, ts_ns),
                self.best(ids, WorkloadKind::External, port, ts_ns),
            ),
            None => (None, None, None),
        };
        let source = if pod.is_some() {
            Source::Pod
        } else if service_entry.is_some() {
            Source::Service
        } else if external.is_some() {
            Source::External
        } else if dns.is_some() {
            Source::Dns
        } else {
            return None;
        };
        Some(Identity {
            source,
            pod,
            service_entry,
            external,
            dns,
        })
    }

    fn best(&self, ids: &[usize], kind: WorkloadKind, port: u16, ts: i64) -> Option<&Workload> {
        let mut best: Option<&Workload> = None;
        let rank = |w: &Workload| (!w.ports.is_empty(), w.valid_from.unwrap_or(i64::MIN));
        for w in ids.iter().filter_map(|&i| self.index.entries.get(i)) {
            if w.kind != kind || !w.valid_at(ts) || !w.serves_port(port) {
                continue;
            }
            // Strictly greater: on a tie the entry written first stays.
            if best.is_none_or(|b| rank(w) > rank(b)) {
                best = Some(w);
            }
        }
        best
    }

    /// Fills `call.src` and `call.dst` identity fields (`name`,
    /// `namespace`, `pod`, `service`, `dns`, `labels`, `resolved_by`) at
    /// the call's timestamp, replacing any there, and the call's
    /// `namespaces`, `pods` and `services` lists (distinct, src first).
    /// A call between unknown addresses is left as it is (its identity
    /// fields cleared, which allocates nothing).
    pub fn apply(&self, call: &mut Call) {
        let ts = call.timestamp;
        let src = self.resolve(call.src.ip, call.src.port, ts);
        let dst = self.resolve(call.dst.ip, call.dst.port, ts);
        fill(&mut call.src, src.as_ref());
        fill(&mut call.dst, dst.as_ref());
        call.namespaces.clear();
        call.pods.clear();
        call.services.clear();
        for ep in [&call.src, &call.dst] {
            push_distinct(&mut call.namespaces, &ep.namespace);
            push_distinct(&mut call.pods, &ep.pod.name);
            push_distinct(&mut call.services, &ep.service.name);
        }
    }
}

fn push_distinct(list: &mut Vec<String>, value: &str) {
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// Writes `id` into the endpoint, reusing the strings' buffers.
fn fill(ep: &mut Endpoint, id: Option<&Identity<'_>>) {
    ep.name.clear();
    ep.namespace.clear();
    ep.pod.name.clear();
    ep.pod.namespace.clear();
    ep.service.name.clear();
    ep.service.namespace.clear();
    ep.dns.clear();
    ep.labels.clear();
    ep.resolved_by = None;
    let Some(id) = id else { return };
    ep.name.push_str(id.name());
    ep.namespace.push_str(id.namespace());
    if let Some((name, ns)) = id.pod() {
        ep.pod.name.push_str(name);
        ep.pod.namespace.push_str(ns);
    }
    if let Some((name, ns)) = id.service() {
        ep.service.name.push_str(name);
        ep.service.namespace.push_str(ns);
    }
    ep.dns.push_str(id.dns.unwrap_or(""));
    if let Some(labels) = id.labels() {
        ep.labels.clone_from(labels);
    }
    ep.resolved_by = Some(id.resolved_by());
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_model::{DnsAnswer, NamedRef, Protocol};

    const S: i64 = 1_000_000_000;
    /// 2024-06-01T12:00:00Z, the lab generator's default start.
    const NOON: i64 = 1_717_243_200 * S;
    const HOUR: i64 = 3600 * S;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolver(yaml: &str) -> Resolver {
        Resolver::new(Workloads::from_yaml(yaml, "test.yaml").unwrap())
    }

    fn dns_call(ts: i64, name: &str, addr: &str) -> Call {
        let mut c = Call::new(Protocol::Dns);
        c.timestamp = ts;
        c.dns_response = true;
        c.dns_questions = vec![name.into()];
        c.dns_answers = vec![DnsAnswer {
            name: name.into(),
            rtype: "A".into(),
            data: addr.into(),
            ttl: 30,
        }];
        c
    }

    fn http_call(ts: i64, src: (&str, u16), dst: (&str, u16)) -> Call {
        let mut c = Call::new(Protocol::Http);
        c.timestamp = ts;
        c.src = Endpoint::new(ip(src.0), src.1);
        c.dst = Endpoint::new(ip(dst.0), dst.1);
        c
    }

    const SHOP: &str = "
workloads:
  - kind: pod
    name: checkout-7d9f8-abcde
    namespace: shop
    service: checkout
    node: node-1
    labels: {app: checkout, tier: backend}
    ips: [10.244.1.12]
  - kind: pod
    name: frontend-5c6b7-xyz12
    namespace: web
    labels: {app: frontend}
    ips: [10.244.2.7]
  - kind: service
    name: checkout
    namespace: shop
    labels: {app: checkout}
    ips: [10.96.0.15]
    ports: [80]
  - kind: service
    name: shadow
    namespace: shop
    ips: [10.244.1.12]
  - kind: external
    name: billing-db
    namespace: legacy
    ips: [192.0.2.7]
";

    #[test]
    fn pod_beats_service_beats_external_beats_dns() {
        let mut r = resolver(SHOP);
        for (name, addr) in [
            ("checkout.example", "10.244.1.12"),
            ("checkout.shop.svc.cluster.local", "10.96.0.15"),
            ("db.example", "192.0.2.7"),
            ("api.stripe.com", "198.51.100.9"),
        ] {
            r.learn(&dns_call(NOON - S, name, addr));
        }
        let at = |a: &str, port| r.resolve(ip(a), port, NOON).unwrap();

        let pod = at("10.244.1.12", 8080);
        assert_eq!(pod.source, Source::Pod);
        assert_eq!(pod.name(), "checkout-7d9f8-abcde");
        // The service entry claiming the same IP is seen, but the pod's
        // own `service:` names the service.
        assert_eq!(pod.service_entry.unwrap().name, "shadow");
        assert_eq!(pod.service(), Some(("checkout", "shop")));
        assert_eq!(pod.dns, Some("checkout.example"));

        let svc = at("10.96.0.15", 80);
        assert_eq!(svc.source, Source::Service);
        assert_eq!(svc.name(), "checkout");
        assert_eq!(svc.resolved_by(), Resolution::Service);

        let ext = at("192.0.2.7", 5432);
        assert_eq!(ext.source, Source::External);
        assert_eq!((ext.name(), ext.namespace()), ("billing-db", "legacy"));
        assert_eq!(ext.service(), None);
        assert_eq!(ext.resolved_by(), Resolution::External);
        assert_eq!(ext.dns, Some("db.example"));

        let dns = at("198.51.100.9", 443);
        assert_eq!(dns.source, Source::Dns);
        assert_eq!(dns.name(), "api.stripe.com");
        assert_eq!(dns.resolved_by(), Resolution::Dns);
        assert_eq!(dns.labels(), None);

        assert!(r.resolve(ip("203.0.113.1"), 80, NOON).is_none());
    }

    #[test]
    fn cluster_dns_names_give_service_and_namespace() {
        let mut r = resolver("workloads: []");
        r.learn(&dns_call(NOON, "cart.shop.svc.cluster.local", "10.2.0.2"));
        r.learn(&dns_call(NOON, "cart.shop.svc", "10.2.0.3"));
        let id = r.resolve(ip("10.2.0.2"), 80, NOON).unwrap();
        assert_eq!(id.name(), "cart.shop.svc.cluster.local");
        assert_eq!(id.namespace(), "shop");
        assert_eq!(id.service(), Some(("cart", "shop")));
        let partial = r.resolve(ip("10.2.0.3"), 80, NOON).unwrap();
        assert_eq!(partial.service(), None);
        assert_eq!(partial.namespace(), "");
        assert_eq!(cluster_service("a.b.pod.cluster.local"), None);
        assert_eq!(cluster_service(".b.svc.cluster.local"), None);
    }

    #[test]
    fn a_reused_ip_resolves_by_time() {
        let r = resolver(
            "
workloads:
  - {kind: pod, name: cart-old, namespace: shop, ips: [10.244.3.3],
     valid_from: 2024-06-01T11:00:00Z, valid_to: 2024-06-01T12:00:00Z}
  - {kind: pod, name: cart-new, namespace: shop, ips: [10.244.3.3],
     valid_from: 2024-06-01T12:00:00Z}
  - {kind: pod, name: ancient, namespace: shop, ips: [10.244.3.4],
     valid_to: 2024-06-01T12:00:00Z}
",
        );
        let name = |a: &str, ts| r.resolve(ip(a), 80, ts).map(|i| i.name());
        assert_eq!(name("10.244.3.3", NOON - HOUR - 1), None);
        assert_eq!(name("10.244.3.3", NOON - HOUR), Some("cart-old"));
        assert_eq!(name("10.244.3.3", NOON - 1), Some("cart-old"));
        // valid_to is exclusive, valid_from inclusive: no overlap at noon.
        assert_eq!(name("10.244.3.3", NOON), Some("cart-new"));
        assert_eq!(name("10.244.3.3", NOON + 100 * HOUR), Some("cart-new"));
        assert_eq!(name("10.244.3.4", 0), Some("ancient"));
        assert_eq!(name("10.244.3.4", NOON), None);
    }

    #[test]
    fn overlapping_windows_prefer_the_latest_start_then_file_order() {
        let r = resolver(
            "
workloads:
  - {kind: pod, name: first, namespace: n, ips: [10.0.0.1]}
  - {kind: pod, name: second, namespace: n, ips: [10.0.0.1]}
  - {kind: pod, name: newer, namespace: n, ips: [10.0.0.1], valid_from: 2024-06-01T12:00:00Z}
",
        );
        let name = |ts| r.resolve(ip("10.0.0.1"), 1, ts).map(|i| i.name());
        assert_eq!(name(NOON - 1), Some("first"));
        assert_eq!(name(NOON), Some("newer"));
    }

    #[test]
    fn port_specific_entries_win_and_only_match_their_ports() {
        // A node address shared by host-network pods.
        let r = resolver(
            "
workloads:
  - {kind: external, name: node-1, ips: [172.18.0.2]}
  - {kind: pod, name: node-exporter, namespace: monitoring, ips: [172.18.0.2], ports: [9100]}
  - {kind: pod, name: kube-proxy, namespace: kube-system, ips: [172.18.0.2]}
  - {kind: pod, name: ingress, namespace: ingress, ips: [172.18.0.2], ports: [80, 443]}
",
        );
        let name = |port| r.resolve(ip("172.18.0.2"), port, NOON).map(|i| i.name());
        assert_eq!(name(9100), Some("node-exporter"));
        assert_eq!(name(443), Some("ingress"));
        assert_eq!(name(80), Some("ingress"));
        assert_eq!(name(10250), Some("kube-proxy"));

        // Without a port-less pod, other ports fall through to the next kind.
        let r = resolver(
            "
workloads:
  - {kind: pod, name: web, namespace: n, ips: [10.0.0.9], ports: [8080]}
  - {kind: service, name: web-svc, namespace: n, ips: [10.0.0.9]}
",
        );
        assert_eq!(r.resolve(ip("10.0.0.9"), 8080, NOON).unwrap().name(), "web");
        let other = r.resolve(ip("10.0.0.9"), 41000, NOON).unwrap();
        assert_eq!((other.source, other.name()), (Source::Service, "web-svc"));
    }

    #[test]
    fn apply_fills_every_field_and_the_lists() {
        let mut r = resolver(SHOP);
        r.learn(&dns_call(
            NOON - S,
            "checkout.shop.svc.cluster.local",
            "10.96.0.15",
        ));
        r.learn(&dns_call(NOON - S, "frontend.internal", "10.244.2.7"));
        let mut call = http_call(NOON, ("10.244.2.7", 40000), ("10.96.0.15", 80));
        r.apply(&mut call);

        let src = &call.src;
        assert_eq!(src.name, "frontend-5c6b7-xyz12");
        assert_eq!(src.namespace, "web");
        assert_eq!(
            src.pod,
            NamedRef {
                name: "frontend-5c6b7-xyz12".into(),
                namespace: "web".into()
            }
        );
        assert_eq!(src.service, NamedRef::default());
        assert_eq!(src.dns, "frontend.internal");
        assert_eq!(
            src.labels,
            BTreeMap::from([("app".into(), "frontend".into())])
        );
        assert_eq!(src.resolved_by, Some(Resolution::Pod));
        assert_eq!((src.ip, src.port), (ip("10.244.2.7"), 40000));

        let dst = &call.dst;
        assert_eq!(dst.name, "checkout");
        assert_eq!(dst.namespace, "shop");
        assert_eq!(dst.pod, NamedRef::default());
        assert_eq!(
            dst.service,
            NamedRef {
                name: "checkout".into(),
                namespace: "shop".into()
            }
        );
        assert_eq!(dst.dns, "checkout.shop.svc.cluster.local");
        assert_eq!(dst.labels["app"], "checkout");
        assert_eq!(dst.resolved_by, Some(Resolution::Service));

        assert_eq!(call.namespaces, ["web", "shop"]);
        assert_eq!(call.pods, ["frontend-5c6b7-xyz12"]);
        assert_eq!(call.services, ["checkout"]);

        // A pod with `service:` fills the service too; distinct lists.
        let mut call = http_call(NOON, ("10.244.1.12", 40000), ("10.96.0.15", 80));
        r.apply(&mut call);
        assert_eq!(
            call.src.service,
            NamedRef {
                name: "checkout".into(),
                namespace: "shop".into()
            }
        );
        assert_eq!(call.src.labels["tier"], "backend");
        assert_eq!(call.namespaces, ["shop"]);
        assert_eq!(call.pods, ["checkout-7d9f8-abcde"]);
        assert_eq!(call.services, ["checkout"]);

        // Applying again (say, with other workloads) replaces, not appends.
        let before = call.clone();
        r.apply(&mut call);
        assert_eq!(call, before);
        let json = serde_json::to_value(&call).unwrap();
        assert_eq!(json["src"]["pod"]["name"], "checkout-7d9f8-abcde");
        assert_eq!(json["dst"]["resolved_by"], "service");
    }

    #[test]
    fn unknown_addresses_leave_the_call_unchanged() {
        let mut r = resolver(SHOP);
        r.learn(&dns_call(NOON, "api.stripe.com", "198.51.100.9"));
        let mut call = http_call(NOON, ("10.9.9.9", 40000), ("10.8.8.8", 80));
        call.method = "GET".into();
        let before = call.clone();
        r.apply(&mut call);
        assert_eq!(call, before);
        // Known address, wrong time or port: unresolved as well.
        let mut call = http_call(NOON, ("10.9.9.9", 40000), ("10.96.0.15", 8080));
        let before = call.clone();
        r.apply(&mut call);
        assert_eq!(call, before);
        // One side known: the other side stays empty, the lists hold one.
        let mut call = http_call(NOON + S, ("10.9.9.9", 40000), ("198.51.100.9", 443));
        r.apply(&mut call);
        assert_eq!(call.src, Endpoint::new(ip("10.9.9.9"), 40000));
        assert_eq!(call.dst.name, "api.stripe.com");
        assert!(call.namespaces.is_empty() && call.pods.is_empty() && call.services.is_empty());
    }

    #[test]
    fn stale_identity_is_cleared_when_nothing_resolves() {
        let r = resolver("workloads: []");
        let mut call = http_call(NOON, ("10.9.9.9", 40000), ("10.8.8.8", 80));
        call.src.name = "stale".into();
        call.src.labels.insert("a".into(), "b".into());
        call.src.resolved_by = Some(Resolution::Pod);
        call.pods.push("stale".into());
        r.apply(&mut call);
        assert_eq!(call.src, Endpoint::new(ip("10.9.9.9"), 40000));
        assert!(call.pods.is_empty());
    }

    #[test]
    fn learn_and_apply_streams() {
        let mut r = resolver("workloads: []");
        let mut query = dns_call(NOON, "hooks.slack.com", "203.0.113.5");
        query.src = Endpoint::new(ip("10.1.0.1"), 40000);
        query.dst = Endpoint::new(ip("10.3.0.10"), 53);
        r.learn_and_apply(&mut query);
        assert!(query.dst.name.is_empty());
        let mut call = http_call(NOON + S, ("10.1.0.1", 40001), ("203.0.113.5", 443));
        r.learn_and_apply(&mut call);
        assert_eq!(call.dst.name, "hooks.slack.com");
        assert_eq!(call.dst.resolved_by, Some(Resolution::Dns));
    }
}
