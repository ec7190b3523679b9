//! The endpoints of features Pier does not have, answered as a dockerd without them
//! answers (clients probe them and break on a 404): swarm mode's endpoints say this
//! node is not in a swarm (503), and the plugin list is empty.

use axum::http::StatusCode;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// dockerd's answer to a swarm-manager endpoint outside a swarm.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
/// dockerd's answer to `POST /swarm/leave` outside a swarm.
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/swarm/leave", post(leave))
        .route("/plugins", get(plugins));
    for area in ["swarm", "services", "nodes", "tasks", "secrets", "configs"] {
        router = router
            .route(&format!("/{area}"), any(not_a_manager))
            .route(&format!("/{area}/{{*rest}}"), any(not_a_manager));
    }
    router
}

async fn not_a_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

async fn leave() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_IN_A_SWARM)
}

async fn plugins() -> Json<Value> {
    Json(json!([]))
}
