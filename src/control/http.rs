//! The management HTTP endpoint: hyper's HTTP/1.1 server on a one-thread tokio runtime, on a
//! std thread pinned off the shard CPUs (never on a shard's executor).
//!
//! Why hyper: a scrape, a load balancer's health check and an operator's curl arrive at once,
//! and a client may connect and send nothing. The endpoint must serve connections
//! concurrently, bound how long a client may take to send its request, bound how many
//! connections it holds, and stop when junction stops. hyper (with `header_read_timeout`)
//! does all of it on one thread; the small threaded servers do not: tiny_http 0.12 has no
//! connection timeout and its accept loop ends for good at the first accept error (out of
//! descriptors), oxhttp binds its own socket and cannot be stopped. Handlers run on the
//! runtime's blocking pool (at most `limits::HTTP_WORKERS_MAX` threads, created by the pinned
//! thread so they inherit its CPU), so a slow reload never delays `/healthz`.
//!
//! Connections: at most `limits::HTTP_CONNECTIONS_MAX` at once (more are closed at once); a
//! request head must arrive within `HttpLimits::io_timeout` and fit in
//! `HttpLimits::request_bytes_max` (else the connection is closed, or answered 431); one
//! request per connection (`Connection: close`); a connection lives at most
//! `limits::HTTP_CONNECTION_MAX`.
//!
//! Routes (`dispatch`, one function from method, path, query and body to a response, which
//! other endpoints plug into through `Handlers::endpoints`): `GET /metrics` (Prometheus text
//! 0.0.4, docs/metrics.md), `GET /metrics/latency.json[?since=last]` (exact percentiles of
//! the latency histograms, see `latency.rs`), `GET /healthz` (200 `ok`), `GET /ready` (200
//! when every shard serves, else 503); HEAD works as GET without a body; other methods on
//! these paths get 405, other paths 404. When the server gives a reload hook, `POST /reload`
//! (its body is ignored) reloads the configuration file like SIGHUP: 200 with the report
//! when the new configuration is in use, 422 with one `file:line: key: message` line per
//! problem when it was refused (nothing changed), so a client can fail on a refused reload.

use super::MetricsHub;
use crate::limits;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// The bounds the endpoint keeps (the `limits` values in production; tests shrink them).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Bytes of a request head (request line and headers); hyper's floor is 8192.
    pub request_bytes_max: usize,
    /// Time a client has to send its request head, and its body.
    pub io_timeout: Duration,
    /// Connections served at once.
    pub connections_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_bytes_max: limits::HTTP_REQUEST_BYTES_MAX,
            io_timeout: limits::HTTP_IO_TIMEOUT,
            connections_max: limits::HTTP_CONNECTIONS_MAX,
        }
    }
}

/// hyper refuses a smaller read buffer.
const HYPER_BUFFER_MIN: usize = 8192;

/// What `POST /reload` runs: Ok(report) is answered 200, Err(problems) 422. It only
/// re-reads the file the server was started with; the request carries nothing it uses.
pub type ReloadHook = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// One request as the handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, `POST`... (a HEAD request is answered like a GET, without the body).
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// What follows `?` in the target (empty when none).
    pub query: &'a str,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// GET or HEAD.
    pub fn is_get(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }

    /// The query has the parameter `pair` (`name=value`, exactly).
    pub fn query_has(&self, pair: &str) -> bool {
        self.query.split('&').any(|p| p == pair)
    }
}

/// An endpoint plugged into the server: `Some(response)` when the path is its, `None` to
/// let the other routes (then 404) have it. Runs on the HTTP worker threads.
pub type Endpoint = Arc<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Handlers {
    pub hub: Arc<MetricsHub>,
    /// `None`: `/reload` is not served (404).
    pub reload: Option<ReloadHook>,
    /// More endpoints, asked in order after the built-in routes.
    pub endpoints: Vec<Endpoint>,
}

impl Handlers {
    /// Metrics and health only.
    pub fn metrics(hub: Arc<MetricsHub>) -> Handlers {
        Handlers {
            hub,
            reload: None,
            endpoints: Vec::new(),
        }
    }
}

/// A response ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// An `application/json` response.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    /// 405 with the methods the path takes.
    pub fn method_not_allowed(allow: &str) -> Response {
        let mut response = Response::text(405, &format!("method not allowed: use {allow}\n"));
        response.headers.push(("Allow", allow.to_string()));
        response
    }
}

/// Answer one request.
pub fn dispatch(handlers: &Handlers, request: &Request) -> Response {
    let hub = &handlers.hub;
    match request.path {
        "/reload" if handlers.reload.is_some() => {
            if request.method != "POST" {
                return Response::method_not_allowed("POST");
            }
            match handlers.reload.as_ref().map(|reload| reload()) {
                Some(Ok(report)) => Response::text(200, &report),
                Some(Err(problems)) => Response::text(422, &problems),
                None => Response::text(404, "not found\n"),
            }
        }
        "/metrics" | "/metrics/latency.json" | "/healthz" | "/ready" if !request.is_get() => {
            Response::method_not_allowed("GET, HEAD")
        }
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: hub.render(),
            headers: Vec::new(),
        },
        "/metrics/latency.json" => {
            Response::json(200, hub.latency_json(request.query_has("since=last")))
        }
        "/healthz" => Response::text(200, "ok\n"),
        "/ready" if hub.all_running() => Response::text(200, "ready\n"),
        "/ready" => Response::text(503, "not ready: not every shard is serving\n"),
        _ => handlers
            .endpoints
            .iter()
            .find_map(|endpoint| endpoint(request))
            .unwrap_or_else(|| Response::text(404, "not found\n")),
    }
}

/// The running endpoint.
pub struct HttpServer {
    local: SocketAddr,
    cpu: Option<usize>,
    stop: watch::Sender<bool>,
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

    /// Stop serving (the listening socket is closed) and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
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
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("metrics http://{local}: {e}"))?;
    let spare = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|core| !shard_cpus.contains(&core.id));
    let cpu = spare.map(|core| core.id);
    let (stop, stopped) = watch::channel(false);
    // The runtime is built here so that an error reaches the caller; its threads start on
    // the pinned thread below (the blocking pool's threads inherit the pinning).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(limits::HTTP_WORKERS_MAX)
        .thread_name("junction-http-worker")
        .build()
        .map_err(|e| format!("metrics: cannot start the HTTP runtime: {e}"))?;
    let thread = std::thread::Builder::new()
        .name("junction-http".to_string())
        .spawn(move || {
            if let Some(core) = spare {
                core_affinity::set_for_current(core);
            }
            runtime.block_on(serve(listener, handlers, stopped, limits));
            // Connections still open are dropped; a handler still running (a reload waiting
            // for the shards) gets a bounded time to end.
            runtime.shutdown_timeout(limits.io_timeout);
        })
        .map_err(|e| format!("metrics: cannot start the HTTP thread: {e}"))?;
    Ok(HttpServer {
        local,
        cpu,
        stop,
        thread: Some(thread),
    })
}

async fn serve(
    listener: TcpListener,
    handlers: Handlers,
    mut stopped: watch::Receiver<bool>,
    limits: HttpLimits,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            crate::log_error!("metrics endpoint cannot serve", error = e);
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let handlers = Arc::new(handlers);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or memory: back off instead of spinning on accept.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Over the limit: closed at once (a client retries; the limit keeps descriptors and
        // memory bounded whatever the clients do).
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let handlers = Arc::clone(&handlers);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, Arc::clone(&handlers), limits));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.io_timeout)
                .keep_alive(false)
                .title_case_headers(true)
                .max_buf_size(limits.request_bytes_max.max(HYPER_BUFFER_MIN))
                .serve_connection(TokioIo::new(stream), service);
            // Errors concern only this connection (peer gone, timeout, bad request).
            let _ = tokio::time::timeout(limits::HTTP_CONNECTION_MAX, connection).await;
            drop(slot);
        });
    }
}

/// Read the body (bounded in size and time), run `dispatch` on a worker thread, convert.
async fn answer(
    request: hyper::Request<Incoming>,
    handlers: Arc<Handlers>,
    limits: HttpLimits,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(
        limits.io_timeout,
        Limited::new(body, limits.request_bytes_max).collect(),
    )
    .await;
    let response = match collected {
        Err(_) => Response::text(408, "request body not received in time\n"),
        Ok(Err(_)) => Response::text(413, "request body too large\n"),
        Ok(Ok(body)) => {
            let body = body.to_bytes();
            let method = parts.method.as_str().to_string();
            let path = parts.uri.path().to_string();
            let query = parts.uri.query().unwrap_or("").to_string();
            let worker = tokio::task::spawn_blocking(move || {
                let request = Request {
                    method: &method,
                    path: &path,
                    query: &query,
                    body: &body,
                };
                dispatch(&handlers, &request)
            });
            worker
                .await
                .unwrap_or_else(|_| Response::text(500, "the handler failed\n"))
        }
    };
    Ok(to_hyper(response))
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("Content-Type", response.content_type);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| {
            let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(
                b"cannot build the response\n",
            )));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::ShardState;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

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
        assert!(health.contains("Connection: close\r\n"), "{health}");
        let head = get(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD must not carry a body: {head}"
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
            latency.contains("\r\n\r\n{\"residence_seconds\":{},\"since_seconds\":null,"),
            "{latency}"
        );
        let post = get(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        assert!(get(addr, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, b"GET /metrics SIP/2.0\r\n\r\n").starts_with("HTTP/1.1 400 "));
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

        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let hook: ReloadHook = Arc::new(move || match counted.fetch_add(1, Ordering::SeqCst) {
            0 => Ok("reloaded f: 1 trunks, 1 routes\n".to_string()),
            _ => Err("f:3: route[0].trunks: no such trunk\n".to_string()),
        });
        let mut handlers = Handlers::metrics(hub);
        handlers.reload = Some(hook);
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
    fn plugged_endpoints_answer_their_paths_only() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let mut handlers = Handlers::metrics(hub);
        handlers.endpoints.push(Arc::new(|request: &Request| {
            (request.path == "/trunks")
                .then(|| Response::json(200, format!("{{\"method\":\"{}\"}}", request.method)))
        }));
        let request = |method, path| Request {
            method,
            path,
            query: "",
            body: b"",
        };
        let trunks = dispatch(&handlers, &request("GET", "/trunks"));
        assert_eq!(
            (trunks.status, trunks.body.as_str()),
            (200, "{\"method\":\"GET\"}")
        );
        assert_eq!(dispatch(&handlers, &request("GET", "/other")).status, 404);
        assert_eq!(dispatch(&handlers, &request("GET", "/healthz")).status, 200);
    }

    #[test]
    fn slow_and_oversize_requests_are_refused() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let limits = HttpLimits {
            io_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let server = serve_hub(hub, limits);
        let addr = server.local_addr();
        // A head that never ends within the byte limit.
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 400).flatten());
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(&big); // the server may close before reading it all
        let mut refused = String::new();
        let _ = stream.read_to_string(&mut refused);
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        // A client that sends half a request and stalls is closed after the timeout (no
        // response), and the server serves others meanwhile.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        assert!(get(addr, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        let started = Instant::now();
        let mut response = Vec::new();
        let closed = slow.read_to_end(&mut response);
        assert!(closed.is_ok(), "the server closes the stalled connection");
        assert!(
            !String::from_utf8_lossy(&response).contains(" 200 "),
            "a half request is not answered"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        server.shutdown();
    }

    #[test]
    fn connections_over_the_limit_are_closed() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let limits = HttpLimits {
            connections_max: 2,
            ..HttpLimits::default()
        };
        let server = serve_hub(hub, limits);
        let addr = server.local_addr();
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // The third is accepted and closed at once: EOF, no response.
        let mut third = TcpStream::connect(addr).unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = third.write_all(b"GET /healthz HTTP/1.1\r\n\r\n");
        let mut response = Vec::new();
        let _ = third.read_to_end(&mut response);
        assert!(
            response.is_empty(),
            "{}",
            String::from_utf8_lossy(&response)
        );
        drop(idle);
        // Once they are gone, requests are served again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200 ") {
                break;
            }
            assert!(Instant::now() < deadline, "never served again: {answer}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.shutdown();
    }

    #[test]
    fn shutdown_closes_the_listener() {
        let hub = Arc::new(MetricsHub::new(&[0], 4096));
        let server = serve_hub(hub, HttpLimits::default());
        let addr = server.local_addr();
        let _idle = TcpStream::connect(addr).unwrap();
        server.shutdown(); // returns only once the thread has exited
        assert!(
            TcpStream::connect(addr).is_err(),
            "listener still open after shutdown"
        );
    }
}
