//! `ErrorResponse`: the body of every Engine API error answer.

use serde::{Deserialize, Serialize};

/// `{"message": "..."}`, as dockerd answers any 4xx/5xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}
