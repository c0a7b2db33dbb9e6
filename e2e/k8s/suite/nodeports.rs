//! A stand-in for kube-proxy's NodePort forwarding (and for a load balancer's, and for an
//! ingress controller passing TLS through), for the local control plane only.
//!
//! The local kit (`../shared/k8s`) runs pods as host processes and has no kube-proxy: a
//! NodePort Service gets its node port from the API server, but nothing listens on it. On a
//! real cluster kube-proxy routes every node port by itself and this is not needed, so the
//! journeys start it only when `STRAND_E2E_PKUBELET` is set (as `e2e/k8s/run.sh` does for the
//! local kit); see [`NodePorts::start_if_local`].
//!
//! For the NodePort and LoadBalancer Services of a namespace whose names start with a prefix,
//! it listens on the host at `0.0.0.0:<nodePort>` (and, for a LoadBalancer Service whose
//! status has an ingress IP, at `<ingress IP>:<port>`, as the load balancer would) and forwards each accepted TCP connection to
//! `<pod IP>:<targetPort>` of the first Ready pod (by name, as pkubelet resolves Service names)
//! matching the Service's selector, looked up per connection. Services that appear later are
//! picked up within a couple of seconds. Dropping it closes the listeners and every forwarded
//! connection and joins its threads, so a journey leaves nothing behind.
//!
//! For the Ingresses of the namespace named `prefix…` that ask for TLS passthrough and whose
//! status has an ingress IP (written by whoever plays the controller), it listens at `<ingress
//! IP>:<the status's first port, or 443>` as ingress-nginx with `--enable-ssl-passthrough`
//! does: it reads the server name (SNI) of each connection's TLS ClientHello without taking
//! it, and forwards the connection, ClientHello included, to the pod of the Service the rule
//! for that host names.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kubectl::try_kubectl;

/// How often the Services are listed again for new or changed node ports.
const REFRESH: Duration = Duration::from_secs(2);

/// Where the connections of one address go: one Service's pod, or the pod of the Service
/// routed to by the TLS server name the client asks for.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Service(Route),
    ByServerName(BTreeMap<String, Route>),
}

/// One Service: where its connections go.
#[derive(Clone, Debug, PartialEq)]
struct Route {
    service: String,
    target_port: u16,
    /// The Service's selector as a `kubectl -l` selector.
    selector: String,
}

/// What the accepting thread and the connection threads share.
struct Shared {
    namespace: String,
    prefix: String,
    stop: AtomicBool,
    /// The open connections' sockets (client side, and pod side once connected), so that
    /// dropping closes them.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
    next_id: AtomicU64,
    /// Connection threads, joined when dropped.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connections accepted per address listened on.
    accepted: Mutex<BTreeMap<SocketAddr, usize>>,
    /// Connections passed through per TLS server name.
    by_server_name: Mutex<BTreeMap<String, usize>>,
}

/// Node ports forwarded from the host to pods while this lives.
pub struct NodePorts {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl NodePorts {
    /// Starts forwarding the node ports of `namespace`'s NodePort Services named `prefix…`
    /// when the suite runs on the local kit (`STRAND_E2E_PKUBELET` set), which lacks
    /// kube-proxy; `None` on a real cluster, where node ports route by themselves.
    pub fn start_if_local(namespace: &str, prefix: &str) -> Option<NodePorts> {
        std::env::var_os("STRAND_E2E_PKUBELET")?;
        Some(NodePorts::start(namespace, prefix))
    }

    /// Starts forwarding: listens on every node port of the matching Services now (a port
    /// that cannot be listened on fails the journey), and on those that appear later.
    pub fn start(namespace: &str, prefix: &str) -> NodePorts {
        let shared = Arc::new(Shared {
            namespace: namespace.to_owned(),
            prefix: prefix.to_owned(),
            stop: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            accepted: Mutex::new(BTreeMap::new()),
            by_server_name: Mutex::new(BTreeMap::new()),
        });
        let mut listeners = BTreeMap::new();
        let routes = node_port_routes(&shared.namespace, &shared.prefix)
            .unwrap_or_else(|e| panic!("cannot list the node ports to forward: {e}"));
        update_listeners(&mut listeners, routes).unwrap_or_else(|e| panic!("{e}"));
        for (address, (_, target)) in &listeners {
            match target {
                Target::Service(route) => println!(
                    "    forwarding {address} to {}:{} (standing in for kube-proxy)",
                    route.service, route.target_port
                ),
                Target::ByServerName(routes) => println!(
                    "    passing TLS through at {address} by server name to {} hosts \
                     (standing in for an ingress controller)",
                    routes.len()
                ),
            }
        }
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&shared, listeners))
        };
        NodePorts {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// How many connections the host accepted on port `port` (a node port, or a load
    /// balancer's port) so far.
    pub fn connections(&self, port: u16) -> usize {
        self.shared
            .accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|(address, _)| address.port() == port)
            .map(|(_, count)| count)
            .sum()
    }

    /// How many connections asked for TLS server name `host` at an Ingress address so far.
    pub fn connections_to_host(&self, host: &str) -> usize {
        self.shared
            .by_server_name
            .lock()
            .unwrap()
            .get(host)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for NodePorts {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // No connection is accepted after this: the listeners are closed.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // A connection thread registers its pod-side socket under this lock and checks the
        // stop flag there, so every socket is either closed here or never used.
        for sockets in self.shared.open.lock().unwrap().values() {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Accepts on every listener until stopped, re-listing the Services every [`REFRESH`].
fn accept_loop(shared: &Arc<Shared>, mut listeners: BTreeMap<SocketAddr, (TcpListener, Target)>) {
    let mut listed = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        if listed.elapsed() >= REFRESH {
            listed = Instant::now();
            match node_port_routes(&shared.namespace, &shared.prefix) {
                Ok(routes) => {
                    if let Err(error) = update_listeners(&mut listeners, routes) {
                        eprintln!("    (node ports: {error})");
                    }
                }
                Err(error) => eprintln!("    (node ports: cannot list Services: {error})"),
            }
        }
        let mut idle = true;
        for (address, (listener, target)) in &listeners {
            match listener.accept() {
                Ok((client, _)) => {
                    idle = false;
                    *shared.accepted.lock().unwrap().entry(*address).or_insert(0) += 1;
                    spawn_connection(shared, client, target.clone());
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => eprintln!("    ({address}: accept: {error})"),
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Listens on the node ports of `routes` not listened on yet, points the others at their
/// current Service, and closes those whose Service is gone.
fn update_listeners(
    listeners: &mut BTreeMap<SocketAddr, (TcpListener, Target)>,
    routes: BTreeMap<SocketAddr, Target>,
) -> Result<(), String> {
    listeners.retain(|address, _| routes.contains_key(address));
    let mut failed = Vec::new();
    for (address, route) in routes {
        if let Some((_, current)) = listeners.get_mut(&address) {
            *current = route;
            continue;
        }
        let listener = match TcpListener::bind(address) {
            Ok(listener) => listener,
            Err(error) => {
                failed.push(format!("cannot listen on {address}: {error}"));
                continue;
            }
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{address}: {e}"))?;
        listeners.insert(address, (listener, route));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Where the namespace's NodePort and LoadBalancer Services named `prefix…` are reached from
/// the host (their node ports, and a LoadBalancer's ingress IP with its port), and its
/// passthrough Ingresses named `prefix…` (their ingress IP and port, by server name).
fn node_port_routes(namespace: &str, prefix: &str) -> Result<BTreeMap<SocketAddr, Target>, String> {
    let text = try_kubectl(&["get", "services", "-n", namespace, "-o", "json"])?;
    let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut routes = ingress_routes(namespace, prefix, &list)?;
    for service in list["items"].as_array().into_iter().flatten() {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let load_balancer = service["spec"]["type"] == "LoadBalancer";
        if !name.starts_with(prefix) || !(service["spec"]["type"] == "NodePort" || load_balancer) {
            continue;
        }
        let ingress_ip = service["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let Some(selector) = service["spec"]["selector"].as_object() else {
            continue;
        };
        let selector = selector
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let (Some(node_port), Some(port_number)) =
                (port["nodePort"].as_u64(), port["port"].as_u64())
            else {
                continue;
            };
            // As pkubelet: a named targetPort is not translated; no targetPort is the port.
            let target_port = port["targetPort"].as_u64().unwrap_or(port_number);
            let route = Route {
                service: name.to_owned(),
                target_port: target_port as u16,
                selector: selector.clone(),
            };
            if let Some(ip) = ingress_ip.filter(|_| load_balancer) {
                routes.insert(
                    SocketAddr::new(ip, port_number as u16),
                    Target::Service(route.clone()),
                );
            }
            routes.insert(
                SocketAddr::from(([0, 0, 0, 0], node_port as u16)),
                Target::Service(route),
            );
        }
    }
    Ok(routes)
}

/// Annotation with which ingress-nginx passes TLS through.
const PASSTHROUGH: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

/// The passthrough Ingresses named `prefix…`: per ingress address, each rule's host to the
/// Service its first path names, reached at that Service port's target port (from
/// `services`, the namespace's Services as `kubectl get -o json` lists them).
fn ingress_routes(
    namespace: &str,
    prefix: &str,
    services: &Value,
) -> Result<BTreeMap<SocketAddr, Target>, String> {
    let text = try_kubectl(&["get", "ingresses", "-n", namespace, "-o", "json"])?;
    let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut routes: BTreeMap<SocketAddr, BTreeMap<String, Route>> = BTreeMap::new();
    for ingress in list["items"].as_array().into_iter().flatten() {
        let name = ingress["metadata"]["name"].as_str().unwrap_or_default();
        if !name.starts_with(prefix) || ingress["metadata"]["annotations"][PASSTHROUGH] != "true" {
            continue;
        }
        let status = &ingress["status"]["loadBalancer"]["ingress"][0];
        let Some(ip) = status["ip"]
            .as_str()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        let port = status["ports"][0]["port"].as_u64().unwrap_or(443) as u16;
        for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
            let (Some(host), Some(backend)) = (
                rule["host"].as_str(),
                rule["http"]["paths"][0]["backend"]["service"].as_object(),
            ) else {
                continue;
            };
            let service_name = backend["name"].as_str().unwrap_or_default();
            let Some(service) = services["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["metadata"]["name"] == service_name)
            else {
                continue;
            };
            let Some(selector) = service["spec"]["selector"].as_object() else {
                continue;
            };
            let backend_port = backend["port"]["number"].as_u64();
            let Some(service_port) = service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["port"].as_u64() == backend_port)
            else {
                continue;
            };
            let target_port = service_port["targetPort"]
                .as_u64()
                .or(backend_port)
                .unwrap_or_default();
            let route = Route {
                service: service_name.to_owned(),
                target_port: target_port as u16,
                selector: selector
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            routes
                .entry(SocketAddr::new(ip, port))
                .or_default()
                .insert(host.to_owned(), route);
        }
    }
    Ok(routes
        .into_iter()
        .map(|(address, hosts)| (address, Target::ByServerName(hosts)))
        .collect())
}

/// The server name (SNI) the TLS ClientHello at the start of `client` asks for, read without
/// taking it from the socket.
fn server_name(client: &TcpStream) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buffer = vec![0u8; 16 * 1024 + 5];
    loop {
        let n = match client.peek(&mut buffer) {
            Ok(0) => return Err("closed before its ClientHello".to_owned()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => 0,
            Err(e) => return Err(format!("reading the ClientHello: {e}")),
        };
        let _ = client.set_read_timeout(None);
        if n >= 5 {
            if buffer[0] != 22 {
                return Err("not TLS: the first record is not a handshake".to_owned());
            }
            let length = u16::from_be_bytes([buffer[3], buffer[4]]) as usize;
            if n >= 5 + length {
                return client_hello_server_name(&buffer[5..5 + length])
                    .ok_or_else(|| "a ClientHello without a server name".to_owned());
            }
        }
        if Instant::now() > deadline {
            return Err("no whole ClientHello within 10 s".to_owned());
        }
        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The host name in the server_name extension of a ClientHello handshake message (RFC 8446
/// 4.1.2, RFC 6066 3), if it has one.
fn client_hello_server_name(handshake: &[u8]) -> Option<String> {
    let mut rest = handshake;
    let mut take = |n: usize| {
        let bytes = rest.get(..n)?;
        rest = &rest[n..];
        Some(bytes)
    };
    if take(1)? != [1] {
        return None;
    }
    take(3)?; // length
    take(2 + 32)?; // legacy version, random
    let session = take(1)?[0] as usize;
    take(session)?;
    let suites = take(2)?;
    let suites = u16::from_be_bytes([suites[0], suites[1]]) as usize;
    take(suites)?;
    let compression = take(1)?[0] as usize;
    take(compression)?;
    let extensions = take(2)?;
    let mut left = u16::from_be_bytes([extensions[0], extensions[1]]) as usize;
    while left >= 4 {
        let header = take(4)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let length = u16::from_be_bytes([header[2], header[3]]) as usize;
        let body = take(length)?;
        left = left.checked_sub(4 + length)?;
        if kind == 0 {
            // server_name_list: length, then (type 0 = host_name, length, name).
            if body.len() < 5 || body[2] != 0 {
                return None;
            }
            let name_length = u16::from_be_bytes([body[3], body[4]]) as usize;
            let name = body.get(5..5 + name_length)?;
            return String::from_utf8(name.to_vec()).ok();
        }
    }
    None
}

/// The IP of the first Ready pod (by name) matching `selector`.
fn ready_pod_ip(namespace: &str, selector: &str) -> Result<String, String> {
    let text = try_kubectl(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])?;
    let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut ready: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter(|pod| {
            pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|pod| {
            Some((
                pod["metadata"]["name"].as_str()?.to_owned(),
                pod["status"]["podIP"].as_str()?.to_owned(),
            ))
        })
        .collect();
    ready.sort();
    ready
        .into_iter()
        .next()
        .map(|(_, ip)| ip)
        .ok_or_else(|| format!("no Ready pod matches {selector}"))
}

/// Forwards `client` to the target's pod on a thread of its own.
fn spawn_connection(shared: &Arc<Shared>, client: TcpStream, target: Target) {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    // Accepted sockets may inherit the listener's non-blocking mode on some systems.
    let _ = client.set_nonblocking(false);
    if let Ok(clone) = client.try_clone() {
        shared.open.lock().unwrap().insert(id, vec![clone]);
    }
    let thread = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let route = match target {
                Target::Service(route) => Ok(route),
                Target::ByServerName(routes) => server_name(&client).and_then(|host| {
                    *shared
                        .by_server_name
                        .lock()
                        .unwrap()
                        .entry(host.clone())
                        .or_insert(0) += 1;
                    routes
                        .get(&host)
                        .cloned()
                        .ok_or_else(|| format!("no Ingress rule for host {host}"))
                }),
            };
            match route {
                Ok(route) => {
                    if let Err(error) = forward(&shared, id, client, &route) {
                        eprintln!("    (forwarding to {}: {error})", route.service);
                    }
                }
                Err(error) => eprintln!("    (ingress: {error})"),
            }
            shared.open.lock().unwrap().remove(&id);
        })
    };
    let mut threads = shared.threads.lock().unwrap();
    threads.retain(|t| !t.is_finished());
    threads.push(thread);
}

/// Connects to the Service's pod and copies bytes both ways until both sides are done.
fn forward(shared: &Shared, id: u64, client: TcpStream, route: &Route) -> Result<(), String> {
    let ip = ready_pod_ip(&shared.namespace, &route.selector)?;
    let address: SocketAddr = format!("{ip}:{}", route.target_port)
        .parse()
        .map_err(|e| format!("pod address {ip}: {e}"))?;
    let upstream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
        .map_err(|e| format!("connect {address}: {e}"))?;
    {
        let mut open = shared.open.lock().unwrap();
        if shared.stop.load(Ordering::SeqCst) {
            let _ = upstream.shutdown(Shutdown::Both);
            return Ok(());
        }
        let clone = upstream.try_clone().map_err(|e| e.to_string())?;
        open.entry(id).or_default().push(clone);
    }
    let back = {
        let (from, to) = (
            upstream.try_clone().map_err(|e| e.to_string())?,
            client.try_clone().map_err(|e| e.to_string())?,
        );
        std::thread::spawn(move || copy_then_close(from, to))
    };
    copy_then_close(client, upstream);
    let _ = back.join();
    Ok(())
}

/// Copies `from` to `to` until `from` ends or fails, then ends `to`'s sending side (a
/// half-close, as a proxy passes it on).
fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
