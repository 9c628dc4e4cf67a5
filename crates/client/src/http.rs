//! The REST API as typed calls.

use reqwest::{Method, StatusCode};
use rfl_domain::api::wire;
use rfl_domain::api::*;
use rfl_domain::{CaseId, MemberId, RecordId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ClientError, Result};

/// What a receiving server says of its checkpoint of a sender's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverCheckpoint {
    /// It holds every change up to this number.
    At(u64),
    /// It has never been told (or was restored from before it was).
    None,
    /// It keeps no checkpoints (a server from before they were kept).
    Unsupported,
}

/// An HTTP connection to one server, optionally with an access token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// How long an idle connection stays in the pool. Shorter than the server keeps one open
/// (`server.keep_alive_secs`, 75 s by default), so the client closes an idle connection before the
/// server does. Otherwise a request can be written into a connection the server is closing and fail
/// with "connection closed before message completed": reqwest's default is 90 s.
pub const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Api {
    pub fn new(base: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rfl-client/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn with_token(mut self, token: String) -> Api {
        self.token = Some(token);
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    async fn send<T: DeserializeOwned>(rb: reqwest::RequestBuilder) -> Result<T> {
        let resp = check(rb.send().await?).await?;
        Ok(resp.json::<T>().await?)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Self::send(self.request(Method::GET, path)).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        Self::send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        Self::send(self.request(Method::PUT, path).json(body)).await
    }

    /// A request whose answer has no body (204).
    pub async fn put_no_content<B: Serialize>(&self, path: &str, body: &B) -> Result<()> {
        check(self.request(Method::PUT, path).json(body).send().await?).await?;
        Ok(())
    }

    /// A DELETE whose answer has no body (204).
    /// A POST whose answer has no body (204).
    pub async fn post_no_content<B: Serialize>(&self, path: &str, body: &B) -> Result<()> {
        check(self.request(Method::POST, path).json(body).send().await?).await?;
        Ok(())
    }

    pub async fn delete_no_content(&self, path: &str) -> Result<()> {
        check(self.request(Method::DELETE, path).send().await?).await?;
        Ok(())
    }

    /// POST with a body already in the binary framing ([`wire`]; bulk import encodes off the async
    /// runtime), answered in JSON.
    pub async fn post_wire<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T> {
        Self::send(
            self.request(Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, wire::MEDIA_TYPE)
                .body(body),
        )
        .await
    }

    /// GET, asking for the binary framing; an answer in JSON (a server that does not offer it) is
    /// read as well.
    pub async fn get_wire<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (binary, body) = self.get_wire_bytes(path).await?;
        decode_wire_or_json(binary, &body)
    }

    /// [`Api::get_wire`] for a large answer (megabytes): decoded on a thread of its own at the idle
    /// class, so neither the runtime's workers nor other work on the machine wait for it.
    pub async fn get_wire_large<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
    ) -> Result<T> {
        let (binary, body) = self.get_wire_bytes(path).await?;
        crate::idle::run(move || decode_wire_or_json(binary, &body)).await
    }

    /// The body of a GET that asks for the binary framing, and whether the answer is in it.
    async fn get_wire_bytes(&self, path: &str) -> Result<(bool, bytes::Bytes)> {
        let resp = check(
            self.request(Method::GET, path)
                .header(reqwest::header::ACCEPT, wire::MEDIA_TYPE)
                .send()
                .await?,
        )
        .await?;
        let binary = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(wire::is_media_type);
        Ok((binary, resp.bytes().await?))
    }

    // --- typed endpoints ---------------------------------------------------------------------------

    pub async fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse> {
        self.post("/v1/enrol", req).await
    }

    pub async fn challenge(&self, req: &ChallengeRequest) -> Result<ChallengeResponse> {
        self.post("/v1/auth/challenge", req).await
    }

    pub async fn token_for(&self, req: &TokenRequest) -> Result<TokenResponse> {
        self.post("/v1/auth/token", req).await
    }

    pub async fn me(&self) -> Result<MeResponse> {
        self.get("/v1/me").await
    }

    pub async fn society(&self) -> Result<SocietyResponse> {
        self.get("/v1/society").await
    }

    /// This server's instance id and how far the caller's society's changes have got (sync agents
    /// and society admins; `docs/sync.md`).
    pub async fn sync_info(&self) -> Result<SyncInfoDto> {
        self.get("/v1/sync/info").await
    }

    /// One page of the caller's society's changes after `after`, with what a reader holding every
    /// change up to `since` lacks (sync agents; `docs/sync.md`, "Pull"), read from the instance
    /// `instance` if given (a cursor of another instance is refused with
    /// [`ClientError::SyncCursor`]), in the binary framing.
    pub async fn sync_changes(
        &self,
        (since, after): (u64, u64),
        instance: Option<uuid::Uuid>,
        limit: Option<u32>,
    ) -> Result<SyncPageDto> {
        let mut path = format!("/v1/sync/changes?since={since}&after={after}");
        if let Some(i) = instance {
            path.push_str(&format!("&instance={i}"));
        }
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        self.get_wire_large(&path).await
    }

    /// One case of the caller's society whole: every commit, record and wrapped key (sync agents;
    /// what a receiver asks for when the case changed on both sides), in the binary framing.
    pub async fn sync_case_whole(&self, case: rfl_domain::CaseId) -> Result<SyncCaseDto> {
        self.get_wire_large(&format!("/v1/sync/cases/{case}")).await
    }

    /// Pushes another server's commits of the caller's society's cases (sync agents;
    /// `docs/sync.md`, "Push") in the binary framing, named by `idempotency_key`: sending the same
    /// batch under the same key again gets the same answer.
    pub async fn sync_push(
        &self,
        idempotency_key: &str,
        batch: &SyncPushDto,
    ) -> Result<SyncPushResponse> {
        let body = wire::encode_into(batch, Vec::new())?;
        self.sync_push_framed(idempotency_key, body).await
    }

    /// [`Api::sync_push`] of a batch already in the binary framing.
    pub async fn sync_push_framed(
        &self,
        idempotency_key: &str,
        body: Vec<u8>,
    ) -> Result<SyncPushResponse> {
        Self::send(
            self.request(Method::POST, "/v1/sync/changes")
                .header(reqwest::header::CONTENT_TYPE, wire::MEDIA_TYPE)
                .header("Idempotency-Key", idempotency_key)
                .body(body),
        )
        .await
    }

    /// A society's trust material as this server serves it (root, successions, certificates,
    /// revocation list, the Movement's certificates of its roots), unverified.
    pub async fn trust_bundle(
        &self,
        society: rfl_domain::SocietyId,
    ) -> Result<SocietyTrustResponse> {
        self.get(&format!("/v1/societies/{society}/trust")).await
    }

    /// The caller's society's trust material and escrow key as its sync agent carries them to the
    /// society's other instance (sync agents).
    pub async fn sync_trust_bundle(&self) -> Result<SyncTrustBundle> {
        self.get("/v1/sync/trust").await
    }

    /// The checkpoint this server keeps of the caller's society's changes from the instance
    /// `source` (sync agents): it holds every one up to the number given.
    pub async fn sync_checkpoint(&self, source: uuid::Uuid) -> Result<ReceiverCheckpoint> {
        match self
            .get::<SyncCheckpointDto>(&format!("/v1/sync/checkpoints/{source}"))
            .await
        {
            Ok(SyncCheckpointDto { seq: Some(seq) }) => Ok(ReceiverCheckpoint::At(seq)),
            Ok(SyncCheckpointDto { seq: None }) => Ok(ReceiverCheckpoint::None),
            // A server from before checkpoints were kept: the route is unknown there.
            Err(e) if e.status() == Some(404) => Ok(ReceiverCheckpoint::Unsupported),
            Err(e) => Err(e),
        }
    }

    /// Tells this server it holds every change of the caller's society up to `seq` on the
    /// instance `source` (sync agents, after a pass that carried them).
    pub async fn put_sync_checkpoint(&self, source: uuid::Uuid, seq: u64) -> Result<()> {
        self.put_no_content(
            &format!("/v1/sync/checkpoints/{source}"),
            &SetSyncCheckpoint { seq },
        )
        .await
    }

    /// Hands this server the caller's society's trust material from its other instance (sync
    /// agents; `docs/sync.md`, "Trust across instances"); the server keeps what verifies.
    pub async fn sync_trust(&self, bundle: &SyncTrustBundle) -> Result<SyncTrustOutcome> {
        self.put("/v1/sync/trust", bundle).await
    }

    pub async fn set_escrow(&self, req: &EscrowDto) -> Result<()> {
        self.put_no_content("/v1/society/escrow", req).await
    }

    pub async fn members(&self) -> Result<MembersResponse> {
        self.get("/v1/members").await
    }

    pub async fn suspend(&self, member: MemberId) -> Result<MemberDto> {
        self.post(
            &format!("/v1/members/{member}/suspend"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn reinstate(&self, member: MemberId) -> Result<MemberDto> {
        self.post(
            &format!("/v1/members/{member}/reinstate"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Signs out everywhere: all of this member's access tokens stop working.
    pub async fn revoke_tokens(&self) -> Result<()> {
        check(self.request(Method::POST, "/v1/auth/revoke").send().await?).await?;
        Ok(())
    }

    pub async fn enrolment_code(
        &self,
        req: &EnrolmentCodeRequest,
    ) -> Result<EnrolmentCodeResponse> {
        self.post("/v1/enrolment-codes", req).await
    }

    pub async fn enrolment_codes(&self) -> Result<EnrolmentCodesResponse> {
        self.get("/v1/enrolment-codes").await
    }

    pub async fn revoke_enrolment_code(&self, id: &str) -> Result<()> {
        self.delete_no_content(&format!("/v1/enrolment-codes/{id}"))
            .await
    }

    /// `escrow`: the society escrow key (age recipient) the case's escrow wrapping was made for.
    pub async fn create_case(&self, req: &NewCaseDto, escrow: &str) -> Result<CaseSummaryDto> {
        Self::send(
            self.request(Method::POST, "/v1/cases")
                .header(ESCROW_KEY_HEADER, escrow)
                .json(req),
        )
        .await
    }

    /// A bulk import body already in the binary framing (`POST /v1/cases/batch`), its escrow
    /// wrappings made for `escrow`.
    pub async fn create_batch_wire(&self, body: Vec<u8>, escrow: &str) -> Result<BatchResponse> {
        Self::send(
            self.request(Method::POST, "/v1/cases/batch")
                .header(reqwest::header::CONTENT_TYPE, wire::MEDIA_TYPE)
                .header(ESCROW_KEY_HEADER, escrow)
                .body(body),
        )
        .await
    }

    pub async fn list_cases(&self, after: Option<CaseId>, limit: i64) -> Result<CaseListResponse> {
        let mut path = format!("/v1/cases?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get(&path).await
    }

    /// A case; with `since`, also the commits after that one (to check the head descends from it).
    pub async fn get_case(&self, id: CaseId, since: Option<u64>) -> Result<CaseDto> {
        match since {
            Some(n) => self.get_wire(&format!("/v1/cases/{id}?since={n}")).await,
            None => self.get_wire(&format!("/v1/cases/{id}")).await,
        }
    }

    /// Both versions of a case in conflict (`docs/sync.md`, "Conflicts and merges"), unverified;
    /// none when the case is not in conflict.
    pub async fn case_conflict(&self, id: CaseId) -> Result<Option<CaseConflictDto>> {
        match self.get(&format!("/v1/cases/{id}/conflict")).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Resolves a case's conflict with a merge commit and the records it brings.
    pub async fn merge_case(&self, id: CaseId, req: &MergeRequest) -> Result<CaseSummaryDto> {
        self.post(&format!("/v1/cases/{id}/merge"), req).await
    }

    /// The version of a case that a merge from the other side replaced on this server; none when
    /// there is none.
    pub async fn case_merged(&self, id: CaseId) -> Result<Option<MergedBranchDto>> {
        match self.get(&format!("/v1/cases/{id}/merged")).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The cases the caller holds that are in conflict.
    pub async fn conflicts(&self) -> Result<ConflictsDto> {
        self.get("/v1/conflicts").await
    }

    pub async fn write_records(
        &self,
        id: CaseId,
        req: &WriteRecordsRequest,
    ) -> Result<CaseSummaryDto> {
        self.post(&format!("/v1/cases/{id}/records"), req).await
    }

    pub async fn grant(&self, id: CaseId, req: &GrantRequest) -> Result<CaseSummaryDto> {
        self.post(&format!("/v1/cases/{id}/grants"), req).await
    }

    /// `escrow`: the society escrow key (age recipient) the new keys were wrapped to.
    pub async fn rekey(&self, req: &RekeyRequest, escrow: &str) -> Result<RekeyResponse> {
        Self::send(
            self.request(Method::POST, "/v1/cases/rekey")
                .header(ESCROW_KEY_HEADER, escrow)
                .json(req),
        )
        .await
    }

    /// The cases of the society `member` holds (society admins), a page after `after`.
    pub async fn member_cases(
        &self,
        member: MemberId,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<MemberCasesResponse> {
        let mut path = format!("/v1/members/{member}/cases?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get(&path).await
    }

    /// The cases of the society where `member` (reset by an admin) still has keys wrapped to their
    /// revoked keys, with the escrow wrappings of every epoch (society admins), a page after `after`.
    pub async fn member_retired_cases(
        &self,
        member: MemberId,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<MemberCasesResponse> {
        let mut path = format!("/v1/members/{member}/retired-cases?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get(&path).await
    }

    /// The cases where the caller still has keys wrapped to keys it rotated away from.
    pub async fn retired_cases(
        &self,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<MemberCasesResponse> {
        let mut path = format!("/v1/me/retired-cases?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get(&path).await
    }

    pub async fn put_next_keys(&self, req: &NextKeysDto) -> Result<MemberDto> {
        self.put("/v1/me/next-keys", req).await
    }

    pub async fn switch_keys(
        &self,
        member: MemberId,
        req: &SwitchKeysRequest,
    ) -> Result<MemberDto> {
        self.post(&format!("/v1/members/{member}/keys"), req).await
    }

    pub async fn case_holders(&self, id: CaseId) -> Result<HoldersResponse> {
        self.get(&format!("/v1/cases/{id}/holders")).await
    }

    pub async fn set_status(&self, id: CaseId, req: &StatusRequest) -> Result<CaseSummaryDto> {
        self.put(&format!("/v1/cases/{id}/status"), req).await
    }

    pub async fn put_chunk(
        &self,
        case: CaseId,
        attachment: RecordId,
        index: u32,
        sealed: Vec<u8>,
    ) -> Result<()> {
        let rb = self
            .request(
                Method::PUT,
                &format!("/v1/cases/{case}/attachments/{attachment}/chunks/{index}"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(sealed);
        check(rb.send().await?).await?;
        Ok(())
    }

    pub async fn get_chunk(
        &self,
        case: CaseId,
        attachment: RecordId,
        index: u32,
    ) -> Result<Vec<u8>> {
        let rb = self.request(
            Method::GET,
            &format!("/v1/cases/{case}/attachments/{attachment}/chunks/{index}"),
        );
        let resp = check(rb.send().await?).await?;
        Ok(resp.bytes().await?.to_vec())
    }
}

/// Turns a non-2xx answer into [`ClientError::Api`] with the problem document's text.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    #[derive(serde::Deserialize)]
    struct P {
        title: Option<String>,
        detail: Option<String>,
        instance_id: Option<uuid::Uuid>,
        resume_after: Option<u64>,
    }
    let text = resp.text().await.unwrap_or_default();
    let p: Option<P> = serde_json::from_str(&text).ok();
    if let Some(P {
        detail,
        instance_id: Some(instance_id),
        resume_after: Some(resume_after),
        ..
    }) = &p
    {
        return Err(ClientError::SyncCursor {
            detail: detail.clone().unwrap_or_default(),
            instance_id: *instance_id,
            resume_after: *resume_after,
        });
    }
    Err(ClientError::Api {
        status: status.as_u16(),
        title: p
            .as_ref()
            .and_then(|p| p.title.clone())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        detail: p.and_then(|p| p.detail).unwrap_or_else(|| reason(status)),
    })
}

fn reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("error").to_owned()
}

/// A body in the binary framing, or in JSON from a server that does not offer it.
fn decode_wire_or_json<T: DeserializeOwned>(binary: bool, body: &[u8]) -> Result<T> {
    if binary {
        Ok(wire::decode(body)?)
    } else {
        Ok(serde_json::from_slice(body)?)
    }
}
