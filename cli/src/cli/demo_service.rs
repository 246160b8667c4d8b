//! The demo's service: a small HTTP API with a health endpoint and a
//! token-protected endpoint, run by `firedrill demo` as a real process.

use super::{Exit, Failure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to serve on
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The bearer token /api/orders accepts
    #[arg(long, default_value = "demo-token")]
    token: String,
}

pub(crate) async fn run(args: Args) -> Result<Exit, Failure> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let expected = format!("Bearer {}", args.token);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let expected = expected.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let authorized = req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                let resp = match (req.method().as_str(), req.uri().path()) {
                    ("GET", "/health") => answer(StatusCode::OK, r#"{"status":"ok"}"#, None),
                    ("GET", "/api/orders") if authorized => answer(
                        StatusCode::OK,
                        r#"{"orders":[{"id":1,"item":"extinguisher"},{"id":2,"item":"hose"}]}"#,
                        None,
                    ),
                    ("GET", "/api/orders") => answer(
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":"unauthorized"}"#,
                        Some(r#"Bearer realm="demo""#),
                    ),
                    _ => answer(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#, None),
                };
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    status: StatusCode,
    body: &'static str,
    challenge: Option<&'static str>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some(c) = challenge {
        r.headers_mut()
            .insert("www-authenticate", c.parse().unwrap());
    }
    r
}
