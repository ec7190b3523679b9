//! `/metrics` in the Prometheus text format: requests by method and status, bytes
//! received and sent, and the storage used by blobs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::storage::Store;

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Metrics {
    pub fn record(&self, method: &str, status: u16, bytes_in: u64, bytes_out: u64) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((method.to_string(), status)).or_default() += 1;
        self.bytes_received.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes_out, Ordering::Relaxed);
    }

    pub fn render(&self, store: &Store) -> Response {
        let mut out = String::new();
        out.push_str("# HELP pier_registry_requests_total HTTP requests served.\n");
        out.push_str("# TYPE pier_registry_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, status), n) in requests.iter() {
            out.push_str(&format!(
                "pier_registry_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}\n"
            ));
        }
        drop(requests);
        for (name, help, value) in [
            (
                "pier_registry_received_bytes_total",
                "Request body bytes received.",
                self.bytes_received.load(Ordering::Relaxed),
            ),
            (
                "pier_registry_sent_bytes_total",
                "Response body bytes sent.",
                self.bytes_sent.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        let (blobs, bytes) = store.blob_usage();
        out.push_str(&format!(
            "# HELP pier_registry_storage_bytes Bytes of blob content stored.\n# TYPE pier_registry_storage_bytes gauge\npier_registry_storage_bytes {bytes}\n# HELP pier_registry_blobs Blobs stored.\n# TYPE pier_registry_blobs gauge\npier_registry_blobs {blobs}\n"
        ));
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            out,
        )
            .into_response()
    }
}
