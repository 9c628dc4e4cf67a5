//! `rfl sync`: the society's sync agent between its own server (this keystore) and the hub (the
//! keystore `--hub`), one round or, with `--watch`, a round every few seconds. Its checkpoints are
//! kept in an authenticated file beside this keystore (`<keystore>.sync`), so a restart goes on
//! where the last pass ended.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rfl_client::sync::{
    round_observed, Direction, PassProgress, PassReport, RoundReport, StateFileStore,
};
use rfl_client::ClientError;
use rfl_domain::api::SyncTrustOutcome;

use super::{passphrase, Context};

#[derive(Args)]
pub struct SyncArgs {
    /// The agent's keystore on the hub (`rfl enrol --machine` there, sealed with the same
    /// passphrase as this one).
    #[arg(long, value_name = "KEYSTORE")]
    hub: PathBuf,
    /// Keep going: a round every SECONDS until interrupted (each checkpoint is kept as soon as
    /// its pass is done, so an interruption loses nothing).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    watch: Option<u64>,
    /// Cases per page (at most the servers' `limits.page_max`, 1000 by default; they may send
    /// fewer).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    page: u32,
}

impl SyncArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let pass = passphrase()?;
        let hub_ctx = Context {
            keystore: self.hub.clone(),
            json: ctx.json,
        };
        loop {
            let result = self.round(ctx, &hub_ctx, &pass).await;
            let Some(secs) = self.watch else {
                return result;
            };
            // A watch goes on after a failed round (a side unreachable, the other side's trust
            // material changed meanwhile): the next round starts from the last checkpoint kept.
            // What cannot get better by waiting (the state file altered) ends it.
            match result {
                Err(e @ (ClientError::Tampered(_) | ClientError::Keystore(_))) => return Err(e),
                Err(e) => eprintln!("rfl sync: this round failed, trying again in {secs} s: {e}"),
                Ok(()) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(secs)) => {}
                r = tokio::signal::ctrl_c() => {
                    r?;
                    return Ok(());
                }
            }
        }
    }
}

impl SyncArgs {
    /// One round, signing in afresh on both sides (a watch outlives any access token).
    async fn round(
        &self,
        ctx: &Context,
        hub_ctx: &Context,
        pass: &secrecy::SecretString,
    ) -> Result<(), ClientError> {
        let own = ctx.open_session_with(pass).await?;
        let hub = hub_ctx.open_session_with(pass).await?;
        let store = StateFileStore::new(StateFileStore::path_for(ctx.keystore_path()), &own);
        let key = own.keys().case_key()?;
        let mut state = store.load(key)?;
        let mut shown = Progress::new();
        let report = round_observed(
            &own,
            &hub,
            &mut state,
            Some(self.page),
            |s| store.save(key, s),
            &mut |way, p| shown.page(way, p),
        )
        .await?;
        ctx.print(&report, || human(&report))
    }
}

/// Progress of a round on stderr: a line every few seconds while a pass lasts (a short pass
/// prints none), with the changes carried of those the sender held, the rate and an estimate.
struct Progress {
    started: Option<(Direction, Instant)>,
    shown: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(2);

    fn new() -> Progress {
        Progress {
            started: None,
            shown: Instant::now(),
        }
    }

    fn page(&mut self, way: Direction, p: PassProgress) {
        let now = Instant::now();
        let began = match self.started {
            Some((w, t)) if w == way => t,
            _ => {
                self.started = Some((way, now));
                self.shown = now;
                now
            }
        };
        let last = p.done >= p.total;
        if now.duration_since(self.shown) < Self::EVERY && !(last && self.shown > began) {
            return;
        }
        self.shown = now;
        let secs = now.duration_since(began).as_secs_f64().max(1e-3);
        let rate = p.cases as f64 / secs;
        let left = if last || p.done == 0 {
            String::new()
        } else {
            let rest = secs * (p.total - p.done) as f64 / p.done as f64;
            format!(", about {rest:.0} s left")
        };
        let way = match way {
            Direction::ToHub => "to the hub",
            Direction::FromHub => "from the hub",
        };
        eprintln!(
            "rfl sync: {way}: {} of {} changes ({}%), {} in {secs:.0} s ({rate:.0} cases/s){left}",
            p.done.min(p.total),
            p.total,
            (p.done.min(p.total) * 100)
                .checked_div(p.total)
                .unwrap_or(100),
            count(p.cases, "case", "cases"),
        );
    }
}

/// "1 case", "2 cases".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn trust_line(to: &str, t: &SyncTrustOutcome) -> Option<String> {
    let mut parts = Vec::new();
    if t.root_changed {
        parts.push("the society root".to_owned());
    }
    for (n, one, many) in [
        (t.successions, "root succession", "root successions"),
        (
            t.movement_certificates,
            "Movement certificate",
            "Movement certificates",
        ),
        (t.certificates, "key certificate", "key certificates"),
        (t.retired, "retired certificate", "retired certificates"),
    ] {
        if n > 0 {
            parts.push(count(n, one, many));
        }
    }
    if let Some(n) = t.revocation_list {
        parts.push(format!("revocation list {n}"));
    }
    if t.escrow {
        parts.push("the escrow key".to_owned());
    }
    if t.unverified > 0 {
        let n = count(t.unverified, "certificate", "certificates");
        parts.push(format!("and left out {n} that did not verify"));
    }
    (!parts.is_empty()).then(|| format!("{to} took {}", parts.join(", ")))
}

fn pass_lines(way: &str, p: &PassReport, out: &mut Vec<String>) {
    out.push(format!(
        "{way}: {} in {}, {} stored, {} held already, in {:.1} s{}",
        count(p.cases, "case", "cases"),
        count(p.pages, "page", "pages"),
        count(p.applied, "commit", "commits"),
        p.known,
        p.secs,
        if p.restarted {
            " (the checkpoint was refused: synced from the start)"
        } else {
            ""
        }
    ));
    for o in &p.conflicts {
        out.push(format!(
            "  CONFLICT case {} (from commit {}): changed on both sides; both versions are kept \
             until a caseworker merges them (see rfl case conflicts)",
            o.case_id,
            o.at.map_or_else(|| "?".to_owned(), |n| n.to_string())
        ));
    }
    for o in &p.refused {
        out.push(format!(
            "  REFUSED case {}: {}",
            o.case_id,
            o.reason.as_deref().unwrap_or("no reason given")
        ));
    }
}

fn human(r: &RoundReport) -> String {
    let mut out = Vec::new();
    out.extend(trust_line("the hub", &r.trust_to_hub));
    out.extend(trust_line("this society's server", &r.trust_from_hub));
    pass_lines("to the hub", &r.to_hub, &mut out);
    pass_lines("from the hub", &r.from_hub, &mut out);
    let refused = r.to_hub.refused.len() + r.from_hub.refused.len();
    let conflicts = r.to_hub.conflicts.len() + r.from_hub.conflicts.len();
    if conflicts > 0 {
        out.push(format!(
            "{}: each side keeps both versions; caseworkers who hold them see both with \
             `rfl case conflicts` and `rfl case show CASE`",
            count(conflicts as u64, "case in conflict", "cases in conflict")
        ));
    }
    if refused > 0 {
        out.push(format!(
            "{}: sent again next round (a refused case's commits failed verification, or its \
             author's certificate has not arrived yet; see docs/sync.md)",
            count(refused as u64, "case refused", "cases refused")
        ));
    }
    out.join("\n")
}
