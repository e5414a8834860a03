//! What the CLI prints, from plain data values: JSON shapes, human tables, event lines, error reports.

use bottle_core::backend::{AllowlistStatus, BackendKind, BottleState, BottleStatus, Live, Verdict};
use bottle_core::cli::{Check, Exit, Failure, Report, output};
use bottle_protocol::control::{AccessRequest, AgentStatus, GrantSource, GrantView};
use bottle_protocol::event::AgentState;
use bottle_protocol::{Event, EventKind};
use serde_json::json;

fn bottle(name: &str, verdict: Verdict) -> BottleStatus {
    BottleStatus {
        name: name.into(),
        backend: BackendKind::Docker,
        state: BottleState::Running,
        detail: String::new(),
        allowlist: AllowlistStatus {
            verdict,
            allowlist: vec!["allowed.test".into(), "*.github.com:443".into()],
            mechanism: "docker internal bridge + bundle proxy".into(),
            checked_at: Some("2026-11-28T12:00:00Z".into()),
            detail: "canary reached; blocked.test refused".into(),
            vmm: None,
        },
        live: None,
    }
}

/// `bottle` as its bundle reports it: `killed` or not, one grant, the agent waiting for its human.
fn live(name: &str, killed: bool) -> BottleStatus {
    BottleStatus {
        live: Some(Live {
            kill_switch: killed,
            grants: vec![GrantView {
                id: "r1".into(),
                entry: "pypi.org:443".into(),
                source: GrantSource::AccessRequest,
                expires_at: Some("2026-11-28T13:00:00Z".into()),
                expires_in_secs: None,
            }],
            agent: AgentStatus {
                state: Some(AgentState::NeedsInput),
                message: "which branch?".into(),
                since: Some("2026-11-28T12:30:00Z".into()),
            },
        }),
        ..bottle(name, Verdict::Verified)
    }
}

#[test]
fn ls_json_is_an_array_of_statuses() {
    let text = output::json(&[bottle("demo", Verdict::Verified), bottle("other", Verdict::Failed)]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v[0],
        json!({
            "name": "demo",
            "backend": "docker",
            "state": "running",
            "detail": "",
            "allowlist": {
                "verdict": "verified",
                "allowlist": ["allowed.test", "*.github.com:443"],
                "mechanism": "docker internal bridge + bundle proxy",
                "checked_at": "2026-11-28T12:00:00Z",
                "detail": "canary reached; blocked.test refused",
            }
        })
    );
    assert_eq!(v[1]["allowlist"]["verdict"], "failed");
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn status_json_round_trips_to_the_same_value() {
    let b = bottle("demo", Verdict::NotVerified);
    let back: BottleStatus = serde_json::from_str(&output::json(&b)).unwrap();
    assert_eq!(back, b);
    assert!(output::json(&b).contains("\"not-verified\""));
}

#[test]
fn ls_table_aligns_columns() {
    let mut long = bottle("a-much-longer-name", Verdict::Failed);
    long.state = BottleState::Degraded;
    long.detail = "bundle restarting".into();
    let text = output::list(&[bottle("demo", Verdict::Verified), long]);
    assert_eq!(
        text,
        "NAME                BACKEND  STATE     BOUNDARY  AGENT  GRANTS  DETAIL\n\
         demo                docker   running   verified  -      -\n\
         a-much-longer-name  docker   degraded  FAILED    -      -       bundle restarting\n"
    );
    assert_eq!(output::list(&[]), "no bottles\n");
}

#[test]
fn a_killed_bottle_is_never_plainly_verified_and_its_grants_and_agent_show() {
    let text = output::list(&[live("demo", true), live("other", false)]);
    assert_eq!(
        text,
        "NAME   BACKEND  STATE             BOUNDARY               AGENT        GRANTS  DETAIL\n\
         demo   docker   running · killed  verified · egress cut  needs-input  1\n\
         other  docker   running           verified               needs-input  1\n"
    );
    let text = output::status(&live("demo", true));
    assert!(text.contains("state:      running · killed\n"), "{text}");
    assert!(text.contains("boundary:   verified · egress cut\n"), "{text}");
    assert!(
        text.contains("kill:       ENGAGED: all egress cut (`bottle-core kill demo --release` restores it)\n"),
        "{text}"
    );
    assert!(text.contains("grants:     pypi.org:443 until 2026-11-28T13:00:00Z (request r1)\n"), "{text}");
    assert!(text.contains("agent:      needs-input since 2026-11-28T12:30:00Z: which branch?\n"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&output::json(&live("demo", true))).unwrap();
    assert_eq!(v["live"]["kill_switch"], true);
    assert_eq!(
        v["live"]["grants"][0],
        json!({"id": "r1", "entry": "pypi.org:443", "source": "access-request",
               "expires_at": "2026-11-28T13:00:00Z", "expires_in_secs": null})
    );
    assert_eq!(v["live"]["agent"]["state"], "needs-input");
    assert!(!output::status(&bottle("demo", Verdict::Verified)).contains("kill:"), "not asked, not shown");
}

#[test]
fn status_text_names_the_verdict_and_allowlist() {
    let text = output::status(&bottle("demo", Verdict::Verified));
    assert!(text.starts_with("name:       demo\nbackend:    docker\nstate:      running\n"), "{text}");
    assert!(text.contains("boundary:   verified\n"), "{text}");
    assert!(text.contains("allowlist:  allowed.test, *.github.com:443\n"), "{text}");
}

#[test]
fn status_text_names_the_vmm_only_when_there_is_one() {
    let mut b = bottle("vm", Verdict::Verified);
    assert!(!output::status(&b).contains("vmm:"));
    b.allowlist.vmm = Some(bottle_core::backend::VmmFacts {
        runtime: "smolvm".into(),
        version: "1.9.3".into(),
        net_backend: "virtio-net".into(),
    });
    assert!(output::status(&b).contains("vmm:        smolvm 1.9.3, virtio-net network backend\n"));
    let v: serde_json::Value = serde_json::from_str(&output::json(&b)).unwrap();
    assert_eq!(v["allowlist"]["vmm"]["net_backend"], "virtio-net");
}

#[test]
fn events_print_one_line_each_human_or_json() {
    let ev = Event {
        id: 7,
        time: "2026-11-28T12:00:01Z".into(),
        bottle: "demo".into(),
        kind: EventKind::EgressBlocked {
            client: "172.30.0.2:40000".into(),
            method: "CONNECT".into(),
            target: "blocked.test:443".into(),
            rule: "not-allowed".into(),
            request_id: "r1".into(),
            access_request: None,
            count: 1,
        },
    };
    assert_eq!(
        output::event(&ev),
        "#7 2026-11-28T12:00:01Z egress blocked: CONNECT blocked.test:443 from 172.30.0.2:40000 (rule not-allowed, block r1)\n"
    );
    let mut repeats = ev.clone();
    if let EventKind::EgressBlocked { count, access_request, .. } = &mut repeats.kind {
        *count = 41;
        *access_request = Some("a7".into());
    }
    assert!(
        output::event(&repeats).ends_with("(rule not-allowed, block r1, access request a7, 41 times)\n"),
        "{}",
        output::event(&repeats)
    );
    assert!(output::json_line(&repeats).contains("\"count\":41"));
    let line = output::json_line(&ev);
    assert_eq!(line.matches('\n').count(), 1);
    let back: Event = serde_json::from_str(&line).unwrap();
    assert_eq!(back, ev);
    let decided = Event {
        id: 8,
        time: "t".into(),
        bottle: "demo".into(),
        kind: EventKind::AccessDecided {
            request_id: "q".into(),
            host: "pypi.org".into(),
            port: Some(443),
            approved: true,
            ttl_secs: Some(60),
        },
    };
    assert_eq!(output::event(&decided), "#8 t access approved q: pypi.org:443 for 60s\n");
}

#[test]
fn requests_and_doctor_tables() {
    let reqs = [AccessRequest {
        id: "q1".into(),
        host: "pypi.org".into(),
        port: Some(443),
        reason: "pip install".into(),
        requested_at: "2026-11-28T12:00:00Z".into(),
    }];
    assert_eq!(
        output::requests(&reqs),
        "ID  DESTINATION   REQUESTED             REASON\nq1  pypi.org:443  2026-11-28T12:00:00Z  pip install\n"
    );
    let checks = [
        Check::new("backend", true, "docker (from default)", ""),
        Check::new("engine", false, "no socket", "start the engine"),
    ];
    assert_eq!(
        output::checks(&checks),
        "      CHECK    DETAIL                 FIX\nok    backend  docker (from default)\nFAIL  engine   no socket              start the engine\n"
    );
}

#[test]
fn error_report_prints_the_whole_chain_once() {
    let err = anyhow::anyhow!("no such file").context("reading bottle.toml").context("starting bottle demo");
    assert_eq!(
        Report(&err).to_string(),
        "error: starting bottle demo\n  caused by: reading bottle.toml\n  caused by: no such file"
    );
}

#[test]
fn broken_pipe_is_recognised_through_context() {
    let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("printing");
    assert!(Failure::new(Exit::Runtime, pipe).is_broken_pipe());
    assert!(!Failure::new(Exit::Runtime, anyhow::anyhow!("other")).is_broken_pipe());
}

/// A ref name holding a newline and ANSI codes, as a hostile agent would push it, prints as
/// one event line with the codes made visible: it cannot forge a `kill switch ENGAGED` line.
#[test]
fn agent_text_with_newlines_and_ansi_codes_cannot_forge_lines() {
    let forged = "refs/heads/x\n#1 2026-11-28T12:00:00Z kill switch ENGAGED: all egress cut\x1b[1A\x1b[2K";
    let ev = Event {
        id: 9,
        time: "t".into(),
        bottle: "demo".into(),
        kind: EventKind::Git {
            repo: "repo".into(),
            operation: bottle_protocol::event::GitOperation::Push,
            allowed: false,
            refs: vec![forged.into()],
            reason: format!("bottle: {forged} is protected"),
        },
    };
    let line = output::event(&ev);
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    assert!(!line.contains('\x1b'), "{line:?}");
    assert!(line.contains("refs/heads/x\\u{a}#1"), "{line:?}");
    let mut b = bottle("demo", Verdict::Failed);
    b.detail = forged.into();
    let shown = output::status(&b);
    assert!(!shown.contains('\x1b') && !shown.contains("\n#1"), "{shown:?}");
    let reqs = [AccessRequest {
        id: "q1".into(),
        host: "h".into(),
        port: None,
        reason: forged.into(),
        requested_at: "t".into(),
    }];
    let table = output::requests(&reqs);
    assert_eq!(table.lines().count(), 2, "{table:?}");
}
