//! The insights routes: `GET /api/v1/snapshots/{id}/insights/service`,
//! `…/anomalies` and `…/explain` run `trawl_insights`' analyses over the
//! snapshot's index on a blocking thread and answer their structs as JSON
//! (the MCP tools' structuredContent). Errors take the API's one shape: a
//! snapshot not dissected yet is `not_dissected`, a bad KFL filter a 400
//! with its position, a bad time or limit a 400 that says how to fix it.
//! Registered in [`crate::api::routes`].

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use trawl_index::MANIFEST_FILE;
use trawl_insights::{
    AnomalyQuery, ExplainQuery, InsightsError, ServiceQuery, TimeRange, analyze_service,
    explain_errors, find_anomalies,
};
use trawl_rawstore::get_snapshot;

use crate::Hub;
use crate::error::{ApiError, not_dissected};
use crate::jobs::index_dir;

impl From<InsightsError> for ApiError {
    fn from(e: InsightsError) -> ApiError {
        match e {
            InsightsError::Query(q) => q.into(),
            InsightsError::BadInput(m) => ApiError::bad_request(m),
        }
    }
}

/// Runs disk and DataFusion work off the runtime's workers.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a worker thread failed: {e}")))?
}

/// The index directory of snapshot `id` on this node, once dissected.
async fn index_of(hub: &Hub, id: String) -> Result<PathBuf, ApiError> {
    if hub.cluster().is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_in_cluster",
            "insights run over one node's index; this hub fans out to workers",
        )
        .with_suggestion(
            "ask the worker that holds the snapshot (its /api/v1/snapshots/{id}/insights/…)",
        ));
    }
    let data = hub.config().data_dir.clone();
    let sid = id.clone();
    let snap = blocking(move || Ok(get_snapshot(&data, &sid)?)).await?;
    let dir = index_dir(&snap.dir);
    if dir.join(MANIFEST_FILE).is_file() {
        return Ok(dir);
    }
    if hub.jobs().running(&id) {
        return Err(ApiError::conflict(
            "dissection_running",
            format!("snapshot {id} is being dissected"),
        )
        .with_suggestion(format!(
            "poll GET /api/v1/snapshots/{id}/dissection until status is \"done\""
        )));
    }
    Err(not_dissected())
}

fn json<T: serde::Serialize>(v: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceParams {
    service: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn service(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(p): Query<ServiceParams>,
) -> Result<Json<Value>, ApiError> {
    let Some(service) = p.service.filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::bad_request("service is required").with_suggestion(
            "add service=NAME (a dst.service.name or dst.name; GET …/stats?filter=http&by=dst.service.name lists them)",
        ));
    };
    let q = ServiceQuery {
        service,
        from: p.from,
        to: p.to,
        limit: p.limit,
    };
    trawl_insights::check_limit(q.limit)?;
    TimeRange::parse(q.from.as_deref(), q.to.as_deref())?;
    let dir = index_of(&hub, id).await?;
    blocking(move || json(&analyze_service(&dir, &q)?)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnomalyParams {
    kfl: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn anomalies(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(p): Query<AnomalyParams>,
) -> Result<Json<Value>, ApiError> {
    let q = AnomalyQuery {
        scope: p.kfl.unwrap_or_default(),
        from: p.from,
        to: p.to,
        limit: p.limit,
    };
    trawl_insights::check_limit(q.limit)?;
    TimeRange::parse(q.from.as_deref(), q.to.as_deref())?;
    let dir = index_of(&hub, id).await?;
    blocking(move || json(&find_anomalies(&dir, &q)?)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainParams {
    kfl: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn explain(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(p): Query<ExplainParams>,
) -> Result<Json<Value>, ApiError> {
    let Some(kfl) = p.kfl.filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::bad_request("kfl is required").with_suggestion(
            "add kfl= a KFL filter selecting the failing calls, e.g. status_code >= 500 && path == \"/api/v1/checkout\"",
        ));
    };
    let q = ExplainQuery {
        kfl,
        limit: p.limit,
    };
    trawl_insights::check_limit(q.limit)?;
    let dir = index_of(&hub, id).await?;
    blocking(move || json(&explain_errors(&dir, &q)?)).await
}
