//! The node for operators: status, transfers, the link's rate schedule, the federation view,
//! metrics, readiness and the quarantine.


use crate::http::{ApiError, AppState, blocking};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub async fn status(State(state): State<AppState>) -> Result<Json<crate::status::Status>, ApiError> {
    let s = blocking(&state, |ctx| crate::status::collect(ctx, true).map_err(ApiError::from)).await?;
    Ok(Json(s))
}

/// Running blob transfers with bytes done, rate and ETA.
pub async fn transfers(State(state): State<AppState>) -> Json<Vec<youke_federation::transfers::TransferInfo>> {
    Json(state.ctx.transfers.snapshot())
}

pub async fn get_link(State(state): State<AppState>) -> Result<Json<crate::link_settings::LinkSettings>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(crate::link_settings::show(ctx)?)).await?))
}

#[derive(Debug, Deserialize)]
pub struct LinkBody {
    /// The new media rate schedule, e.g. "08:00-17:30 2Mbit/s, otherwise unlimited"; `null` goes
    /// back to the config file's.
    pub upload_schedule: Option<String>,
}

/// Changes the media rate schedule of the link to the parent, at once and across restarts.
pub async fn put_link(State(state): State<AppState>, Json(body): Json<LinkBody>) -> Result<Json<crate::link_settings::LinkSettings>, ApiError> {
    let schedule = match body.upload_schedule.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<youke_federation::rate::RateSchedule>().map_err(ApiError::BadRequest)?),
    };
    Ok(Json(blocking(&state, move |ctx| Ok(crate::link_settings::set(ctx, schedule.as_ref())?)).await?))
}

/// The node's links: its parent, its children, and what crossed them.
#[derive(Debug, Serialize)]
pub struct Federation {
    pub node_id: String,
    pub role: String,
    pub doc_seq: u64,
    pub parent: Option<crate::status::ParentLink>,
    pub children: Vec<crate::status::ChildLink>,
    pub docs_sent: u64,
    pub docs_received: u64,
    pub doc_bytes_sent: u64,
    pub doc_bytes_received: u64,
    pub blob_bytes_sent: u64,
    pub blob_bytes_received: u64,
}

pub async fn federation(State(state): State<AppState>) -> Result<Json<Federation>, ApiError> {
    use youke_federation::counters::LinkCounters as C;
    let f = blocking(&state, |ctx| {
        let s = crate::status::collect(ctx, true)?;
        let k = &ctx.counters;
        Ok(Federation {
            node_id: s.node_id,
            role: s.role,
            doc_seq: s.doc_seq,
            parent: s.parent,
            children: s.children,
            docs_sent: C::get(&k.docs_sent),
            docs_received: C::get(&k.docs_received),
            doc_bytes_sent: C::get(&k.doc_bytes_sent),
            doc_bytes_received: C::get(&k.doc_bytes_received),
            blob_bytes_sent: C::get(&k.blob_bytes_sent),
            blob_bytes_received: C::get(&k.blob_bytes_received),
        })
    })
    .await?;
    Ok(Json(f))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = blocking(&state, |ctx| {
        let s = crate::status::collect(ctx, true)?;
        Ok(crate::status::metrics(&s, &ctx.counters))
    })
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// What `/readyz` found.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The database answered a read.
    pub database: bool,
    /// The search index has caught up with the database since the node started.
    pub search_index: bool,
    /// The node is shutting down.
    pub stopping: bool,
    /// The bucket of [object_store] answered (absent when media is on local disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_storage: Option<bool>,
}

/// `GET /readyz`: 200 when this node can serve its portal with current data (database answers,
/// search index caught up, not stopping), else 503 with what is missing: for load balancers in
/// front of several portal frontends, and for the appliance's first boot.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let stopping = state.shutdown.is_cancelled();
    let search_index = state.ctx.index_current.load(std::sync::atomic::Ordering::Acquire);
    let probe = blocking(&state, |ctx| Ok(ctx.store.ping()?));
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), probe).await.is_ok_and(|r| r.is_ok());
    let object_storage = match state.ctx.blobs.remote().cloned() {
        None => None,
        Some(remote) => {
            let probe = tokio::task::spawn_blocking(move || remote.probe());
            Some(tokio::time::timeout(std::time::Duration::from_secs(2), probe).await.is_ok_and(|r| r.is_ok_and(|r| r.is_ok())))
        }
    };
    let ready = database && search_index && !stopping && object_storage != Some(false);
    let r = Readiness { ready, database, search_index, stopping, object_storage };
    let code = if r.ready { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(r)).into_response()
}

pub async fn quarantine(State(state): State<AppState>) -> Result<Json<Vec<crate::ingest::Quarantined>>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(ctx.store.read(crate::ingest::quarantined)?)).await?))
}
