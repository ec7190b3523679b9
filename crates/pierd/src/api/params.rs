//! A request's query parameters as Docker's handlers read them: in order, repeated
//! keys kept (`t=a&t=b`, `names=…`), with Go's `Form.Get` and `httputils` helpers.

use serde::de::DeserializeOwned;

use super::ApiError;

/// The query's `(key, value)` pairs.
pub(super) struct Params(pub(super) Vec<(String, String)>);

impl Params {
    /// The first value of `key` (Go's `Form.Get`).
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, empty when absent.
    pub(super) fn string(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// Every value of `key`, in order.
    pub(super) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's `BoolValue`: true unless absent, empty, `0`, `no`, `false` or `none`.
    pub(super) fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// Docker's `BoolValueOrDefault`: `default` when absent or empty.
    pub(super) fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None | Some("") => default,
            Some(_) => self.bool(key),
        }
    }

    /// An integer parameter; absent or empty is None, anything else not a number a 400.
    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v}"))),
        }
    }

    /// A JSON parameter; absent, empty or `null` (compose sends `cachefrom=null`, which
    /// Go's decoder reads as an empty value) is the default.
    pub(super) fn json<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T, ApiError> {
        match self.get(key).filter(|v| !v.is_empty() && *v != "null") {
            None => Ok(T::default()),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("invalid {key} value: {e}"))),
        }
    }
}
