//! Create fields that dockerd answers on Linux before any engine work, read from the
//! typed body: the Windows-only ones (`Isolation`, `IOMaximumIOps`,
//! `IOMaximumBandwidth` refused, `CpuPercent` discarded with a warning, in dockerd's
//! words), `NetworkDisabled` (the container gets no network but its loopback, as
//! network mode `none`), and an endpoint's `GwPriority`, which Pier cannot honour.

use pier_api::container::ContainerCreateRequest;

use super::ApiError;

/// Checks and adjusts `request`; the warnings, for the create's answer.
pub fn check_create(request: &mut ContainerCreateRequest) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if let Some(hc) = request.host_config.as_mut() {
        if let Some(isolation) = hc.isolation.as_deref() {
            if !isolation.is_empty() && !isolation.eq_ignore_ascii_case("default") {
                return Err(ApiError::bad_request(format!(
                    "Invalid isolation: {isolation:?} - linux only supports 'default'"
                )));
            }
        }
        let resources = &mut hc.resources;
        if resources.io_maximum_iops.is_some_and(|n| n != 0) {
            return Err(ApiError::bad_request(
                "Invalid QoS settings: linux does not support configuration of maximum IOPs",
            ));
        }
        if resources.io_maximum_bandwidth.is_some_and(|n| n != 0) {
            return Err(ApiError::bad_request(
                "Invalid QoS settings: linux does not support configuration of maximum bandwidth",
            ));
        }
        if resources.cpu_percent.is_some_and(|p| p > 0) {
            warnings.push("linux does not support CPU percent. Percent discarded.".to_string());
            resources.cpu_percent = Some(0);
        }
    }
    let endpoints = request
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    if let Some((name, _)) = endpoints
        .into_iter()
        .flatten()
        .find(|(_, e)| e.gw_priority.is_some_and(|p| p != 0))
    {
        return Err(ApiError::bad_request(format!(
            "network {name}: a gateway priority (GwPriority) is not supported by Pier"
        )));
    }
    if request.config.network_disabled == Some(true) {
        let hc = request.host_config.get_or_insert_with(Default::default);
        let mode = hc.network_mode.as_deref().unwrap_or_default();
        if mode != "host" && !mode.starts_with("container:") {
            hc.network_mode = Some("none".into());
            request.networking_config = None;
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(body: serde_json::Value) -> Result<(Vec<String>, ContainerCreateRequest), String> {
        let mut request: ContainerCreateRequest = serde_json::from_value(body).unwrap();
        check_create(&mut request)
            .map(|w| (w, request))
            .map_err(|e| e.message)
    }

    #[test]
    fn windows_only_fields_are_refused_or_discarded() {
        assert_eq!(
            check(json!({"HostConfig": {"Isolation": "hyperv"}})).unwrap_err(),
            "Invalid isolation: \"hyperv\" - linux only supports 'default'"
        );
        assert!(check(json!({"HostConfig": {"Isolation": "default"}})).is_ok());
        assert!(check(json!({"HostConfig": {"IOMaximumIOps": 5}})).is_err());
        let (warnings, request) = check(json!({"HostConfig": {"CpuPercent": 50}})).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(request.host_config.unwrap().resources.cpu_percent, Some(0));
    }

    #[test]
    fn network_disabled_is_network_mode_none() {
        let (_, request) = check(json!({"NetworkDisabled": true,
            "NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}}))
        .unwrap();
        assert_eq!(
            request.host_config.unwrap().network_mode.as_deref(),
            Some("none")
        );
        assert_eq!(request.networking_config, None);
        let (_, request) =
            check(json!({"NetworkDisabled": true, "HostConfig": {"NetworkMode": "host"}})).unwrap();
        assert_eq!(
            request.host_config.unwrap().network_mode.as_deref(),
            Some("host")
        );
    }
}
