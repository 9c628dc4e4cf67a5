//! National society sync (`docs/sync.md`). So far: `GET /v1/sync/info`, what a sync agent reads
//! before any change, which instance this is and how far its society's change sequence has got.

use actix_web::{get, HttpResponse};
use rfl_domain::api::SyncInfoDto;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, SyncPeers};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(info);
}

/// This database's instance id and the caller's society's last change number (sync agents and
/// society admins). A sync cursor names the instance it was read from, so one read from another
/// database is recognised as such.
#[utoipa::path(tag = "sync", security(("bearer" = [])), responses(
    (status = 200, body = SyncInfoDto), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/sync/info")]
async fn info(
    state: State,
    Authorized(caller, _): Authorized<SyncPeers>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (instance_id, seq) =
        blocking(move || Ok((store.instance_id()?, store.society_seq(caller.society_id)?))).await?;
    Ok(HttpResponse::Ok().json(SyncInfoDto {
        instance_id,
        society_id: caller.society_id,
        seq: u64::try_from(seq)
            .map_err(|_| ApiError::Internal("a negative change number".into()))?,
    }))
}
