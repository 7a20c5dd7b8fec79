//! A small HTTP/1.1 responder on a plain std thread (DESIGN.md 4: simpler than, and twice
//! the requests/s of, hyper on glommio; and it keeps HTTP off the shard cores).
//!
//! One connection at a time, one request per connection (`Connection: close`). A request
//! head larger than `limits::HTTP_REQUEST_BYTES_MAX` gets 431, one not complete within
//! `limits::HTTP_IO_TIMEOUT` gets 408; either way the connection is closed. Routes:
//! `GET /metrics` (Prometheus text 0.0.4), `GET /metrics/latency.json[?since=last]` (exact
//! percentiles of the latency histograms, see `latency.rs`), `GET /healthz` (200 `ok`), `GET /ready` (200 when
//! every shard serves, else 503); HEAD works as GET without a body; other methods on these
//! paths get 405, other paths 404. When the server gives a reload hook, `POST /reload`
//! (empty body) reloads the configuration file like SIGHUP: 200 with the report when the
//! new configuration is in use, 422 with one `file:line: key: message` line per problem when
//! it was refused (nothing changed).

use super::MetricsHub;
use crate::limits;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bounds one connection gets (the `limits` values in production; tests shrink them).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub request_bytes_max: usize,
    pub io_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_bytes_max: limits::HTTP_REQUEST_BYTES_MAX,
            io_timeout: limits::HTTP_IO_TIMEOUT,
        }
    }
}

/// What `POST /reload` runs: Ok(report) is answered 200, Err(problems) 422. It only
/// re-reads the file the server was started with; the request carries nothing it uses.
pub type ReloadHook = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Handlers {
    pub hub: Arc<MetricsHub>,
    /// `None`: `/reload` is not served (404).
    pub reload: Option<ReloadHook>,
    /// `/trunks` (`super::trunk_control`); `None`: not served.
    pub trunks: Option<super::trunk_control::TrunkControl>,
}

impl Handlers {
    /// Metrics and health only.
    pub fn metrics(hub: Arc<MetricsHub>) -> Handlers {
        Handlers {
            hub,
            reload: None,
            trunks: None,
        }
    }
}

/// The running endpoint.
pub struct HttpServer {
    local: SocketAddr,
    cpu: Option<usize>,
    stop: Arc<AtomicBool>,
    /// A second handle on the listening socket, to wake the thread blocked in accept().
    listener: TcpListener,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The CPU the thread is pinned to (`None`: no CPU was free of shards).
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Stop serving and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        // On Linux, shutdown() on a listening socket makes a blocked accept() return
        // (EINVAL): the thread sees `stop` and exits. No connection is needed to wake it.
        // SAFETY: plain syscall on a descriptor we own.
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Bind the metrics address (done before any shard starts, so a taken port fails fast).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("metrics http://{addr} is already in use by another process")
        }
        _ => format!("metrics http://{addr}: cannot bind: {e}"),
    })
}

/// Serve `handlers` on `listener` from a new thread, pinned to the first CPU not in
/// `shard_cpus` when there is one.
pub fn spawn(
    listener: TcpListener,
    handlers: Handlers,
    shard_cpus: &[usize],
    limits: HttpLimits,
) -> Result<HttpServer, String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("metrics: cannot read the bound address: {e}"))?;
    let waker = listener
        .try_clone()
        .map_err(|e| format!("metrics http://{local}: {e}"))?;
    let spare = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|core| !shard_cpus.contains(&core.id));
    let cpu = spare.map(|core| core.id);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("junction-metrics".to_string())
        .spawn(move || {
            if let Some(core) = spare {
                core_affinity::set_for_current(core);
            }
            serve(listener, &handlers, &thread_stop, limits);
        })
        .map_err(|e| format!("metrics: cannot start the HTTP thread: {e}"))?;
    Ok(HttpServer {
        local,
        cpu,
        stop,
        listener: waker,
        thread: Some(thread),
    })
}

fn serve(listener: TcpListener, handlers: &Handlers, stop: &AtomicBool, limits: HttpLimits) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                // Errors on one connection (peer went away, timeouts) concern only it.
                let _ = handle(stream, handlers, limits);
            }
            // Out of descriptors or memory: back off instead of spinning on accept.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A response ready to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra header lines (each ending in CRLF).
    pub headers: &'static str,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            headers: "",
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Content",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Route one request head (request line and headers, without the final empty line).
/// Returns the response and whether it is for a HEAD request.
pub fn route(head: &[u8], handlers: &Handlers) -> (Response, bool) {
    let line_end = head
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(head.len());
    let line = head.get(..line_end).unwrap_or(&[]);
    let mut parts = line.split(|b| *b == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (Response::text(400, "bad request line\n"), false);
    };
    if !version.starts_with(b"HTTP/1.") {
        return (Response::text(505, "HTTP/1.x only\n"), false);
    }
    let head_only = method == b"HEAD";
    let path = target.split(|b| *b == b'?').next().unwrap_or(&[]);
    if path == b"/reload" {
        if let Some(reload) = &handlers.reload {
            if method != b"POST" {
                let mut response = Response::text(405, "method not allowed: POST /reload\n");
                response.headers = "Allow: POST\r\n";
                return (response, false);
            }
            let response = match reload() {
                Ok(report) => Response::text(200, &report),
                Err(problems) => Response::text(422, &problems),
            };
            return (response, false);
        }
    }
    if let Some(trunks) = &handlers.trunks {
        let (m, p) = (
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(path),
        );
        if let Some((status, content_type, body)) = trunks.handle(&m, &p) {
            let response = Response {
                status,
                content_type,
                body,
                headers: "",
            };
            return (response, head_only);
        }
    }
    let known = matches!(
        path,
        b"/metrics" | b"/metrics/latency.json" | b"/healthz" | b"/ready"
    );
    if !known {
        return (Response::text(404, "not found\n"), head_only);
    }
    let hub = &handlers.hub;
    if method != b"GET" && !head_only {
        let mut response = Response::text(405, "method not allowed\n");
        response.headers = "Allow: GET, HEAD\r\n";
        return (response, false);
    }
    let response = match path {
        b"/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: hub.render(),
            headers: "",
        },
        b"/metrics/latency.json" => Response {
            status: 200,
            content_type: "application/json",
            body: hub.latency_json(query_has(target, b"since=last")),
            headers: "",
        },
        b"/healthz" => Response::text(200, "ok\n"),
        _ if hub.all_running() => Response::text(200, "ready\n"),
        _ => Response::text(503, "not ready: not every shard is serving\n"),
    };
    (response, head_only)
}

/// The request target's query has the parameter `pair` (`name=value`, exactly).
fn query_has(target: &[u8], pair: &[u8]) -> bool {
    target
        .splitn(2, |b| *b == b'?')
        .nth(1)
        .is_some_and(|query| query.split(|b| *b == b'&').any(|p| p == pair))
}

fn handle(mut stream: TcpStream, handlers: &Handlers, limits: HttpLimits) -> io::Result<()> {
    let deadline = Instant::now() + limits.io_timeout;
    stream.set_write_timeout(Some(limits.io_timeout))?;
    let mut buf = vec![0u8; limits.request_bytes_max];
    let mut len = 0usize;
    let outcome = loop {
        if let Some(end) = find_head_end(buf.get(..len).unwrap_or(&[])) {
            break Ok(end);
        }
        if len >= buf.len() {
            break Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(408);
        }
        stream.set_read_timeout(Some(left))?;
        let Some(free) = buf.get_mut(len..) else {
            break Err(431);
        };
        match stream.read(free) {
            Ok(0) => return Ok(()), // closed before a full request: nothing to answer
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(408);
            }
            Err(e) => return Err(e),
        }
    };
    let (response, head_only) = match outcome {
        Ok(end) => route(buf.get(..end).unwrap_or(&[]), handlers),
        Err(status) => (Response::text(status, "request refused\n"), false),
    };
    write_response(&mut stream, &response, head_only)?;
    if outcome.is_err() {
        linger(&mut stream, deadline);
    }
    Ok(())
}

/// Offset of the CRLF CRLF (or LF LF) that ends a request head.
fn find_head_end(data: &[u8]) -> Option<usize> {
    let crlf = data.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = data.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        response.headers,
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(response.body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// After refusing a request we did not read in full: stop sending, then read and discard
/// what the client is still sending (bounded in bytes and by the request's deadline), so
/// that closing does not reset the connection before the client has read our answer.
fn linger(stream: &mut TcpStream, deadline: Instant) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut scratch = [0u8; 4096];
    let mut discarded = 0usize;
    while discarded < 16 * limits::HTTP_REQUEST_BYTES_MAX {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::ShardState;

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    fn serve_hub(hub: Arc<MetricsHub>, limits: HttpLimits) -> HttpServer {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        spawn(listener, Handlers::metrics(hub), &[], limits).unwrap()
    }

    #[test]
    fn ready_follows_the_shard_states() {
        let hub = Arc::new(MetricsHub::new(&[0, 1], 4096));
        let server = serve_hub(Arc::clone(&hub), HttpLimits::default());
        let addr = server.local_addr();
        let ready = b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(get(addr, ready).starts_with("HTTP/1.1 503 "));
        hub.slot(0).unwrap().set_state(ShardState::Running);
        assert!(get(addr, ready).starts_with("HTTP/1.1 503 "));
        hub.slot(1).unwrap().set_state(ShardState::Running);
        assert!(get(addr, ready).starts_with("HTTP/1.1 200 "));
        hub.slot(1).unwrap().set_state(ShardState::Stopped);
        assert!(get(addr, ready).starts_with("HTTP/1.1 503 "));
        server.shutdown();
    }

    #[test]
    fn routes_methods_and_head() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let server = serve_hub(hub, HttpLimits::default());
        let addr = server.local_addr();
        let health = get(addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
        let head = get(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD must not carry a body: {head}"
        );
        assert!(
            !head.contains("Content-Length: 0\r\n"),
            "HEAD announces the GET length"
        );
        let metrics = get(addr, b"GET /metrics?x=1 HTTP/1.1\n\n");
        assert!(
            metrics.contains("Content-Type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(metrics.contains("\njunction_shards 1\n"), "{metrics}");
        let latency = get(addr, b"GET /metrics/latency.json HTTP/1.1\r\n\r\n");
        assert!(latency.starts_with("HTTP/1.1 200 OK\r\n"), "{latency}");
        assert!(latency.contains("Content-Type: application/json\r\n"));
        assert!(
            latency.contains("\r\n\r\n{\"residence_us\":{},\"since_ms\":null,"),
            "{latency}"
        );
        let post = get(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "));
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        assert!(get(addr, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, b"GET /metrics SIP/2.0\r\n\r\n").starts_with("HTTP/1.1 505 "));
        assert!(get(addr, b"garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
        server.shutdown();
    }

    #[test]
    fn reload_is_served_only_with_a_hook_and_only_for_post() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let plain = serve_hub(Arc::clone(&hub), HttpLimits::default());
        let post = b"POST /reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert!(get(plain.local_addr(), post).starts_with("HTTP/1.1 404 "));
        plain.shutdown();

        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let hook: ReloadHook = Arc::new(move || match counted.fetch_add(1, Ordering::SeqCst) {
            0 => Ok("reloaded f: 1 trunks, 1 routes\n".to_string()),
            _ => Err("f:3: route[0].trunks: no such trunk\n".to_string()),
        });
        let handlers = Handlers {
            hub,
            reload: Some(hook),
            trunks: None,
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = spawn(listener, handlers, &[], HttpLimits::default()).unwrap();
        let addr = server.local_addr();
        let wrong = get(addr, b"GET /reload HTTP/1.1\r\n\r\n");
        assert!(wrong.starts_with("HTTP/1.1 405 "), "{wrong}");
        assert!(wrong.contains("Allow: POST\r\n"), "{wrong}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "GET must not reload");
        let ok = get(addr, post);
        assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
        assert!(
            ok.ends_with("\r\n\r\nreloaded f: 1 trunks, 1 routes\n"),
            "{ok}"
        );
        let refused = get(addr, post);
        assert!(refused.starts_with("HTTP/1.1 422 "), "{refused}");
        assert!(
            refused.ends_with("f:3: route[0].trunks: no such trunk\n"),
            "{refused}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        server.shutdown();
    }

    #[test]
    fn slow_and_oversize_requests_are_refused() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let limits = HttpLimits {
            request_bytes_max: 256,
            io_timeout: Duration::from_millis(300),
        };
        let server = serve_hub(hub, limits);
        let addr = server.local_addr();
        // A head that never ends within the byte limit.
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaa\r\n", 40).flatten());
        let refused = get(addr, &big);
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        // A client that sends half a request and stalls: 408, and the server then serves
        // the next client (it did not stay stuck on the first).
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        let mut response = String::new();
        slow.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
        assert!(get(addr, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        server.shutdown();
    }

    #[test]
    fn shutdown_wakes_a_thread_blocked_in_accept() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let server = serve_hub(hub, HttpLimits::default());
        let addr = server.local_addr();
        server.shutdown(); // returns only once the thread has exited
        assert!(
            TcpStream::connect(addr).is_err(),
            "listener still open after shutdown"
        );
    }
}
