//! The checks over hand-built facts: each rule, its severity, and the wording per IdP.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::facts::{EmailHolder, PendingUser, UserFacts, UserSummary};
use super::{Facts, Finding, Severity, checks, codes, diagnose, text};
use crate::events::{Cause, Event, Idp, Outcome};
use crate::provisioning::{Actor, Health, Manager, Mapping, Placement, Profile, Region, TenantSettings, UserState};
use crate::tenant::Tenant;
use crate::token::{RevokeReason, TokenRecord};

const NOW: OffsetDateTime = datetime!(2030-01-10 12:00 UTC);

fn token(id: &str, created: OffsetDateTime, expires: OffsetDateTime) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        tenant_id: "t1".into(),
        prefix: format!("scimd_{id:0>8}"),
        hash: String::new(),
        created_at: created,
        expires_at: expires,
        revoked_at: None,
        revoke_reason: None,
        last_used_at: None,
        last_used_agent: None,
    }
}

fn mapping(id: &str, priority: i64, filter: Option<&str>, profile: &str, region: &str) -> Mapping {
    Mapping {
        id: id.into(),
        tenant_id: "t1".into(),
        name: format!("mapping {id}"),
        priority,
        filter: filter.map(Into::into),
        profile_id: profile.into(),
        region_id: region.into(),
        enabled: true,
    }
}

fn region(id: &str, health: Health) -> Region {
    Region {
        id: id.into(),
        name: format!("region-{id}"),
        health,
        probe_url: None,
        probe_interval_seconds: None,
        last_probe_at: None,
        last_probe_result: None,
        health_since: NOW - Duration::hours(1),
    }
}

fn profile(id: &str, max_users: u32, active_users: u32) -> Profile {
    Profile { id: id.into(), tenant_id: "t1".into(), name: format!("Profile {id}"), max_users, active_users }
}

/// A healthy tenant: a catch-all to an unlimited profile in a healthy region, a token for a year.
fn healthy() -> Facts {
    Facts {
        tenant: Tenant {
            id: "t1".into(),
            name: "acme".into(),
            token_lifetime_days: 365,
            created_at: NOW - Duration::days(30),
        },
        now: NOW,
        window_days: 7,
        since: NOW - Duration::days(7),
        base_url: Some("https://scim.example.com/scim/v2".into()),
        idp: None,
        events: Vec::new(),
        events_truncated: false,
        tokens: vec![token("tok1", NOW - Duration::days(5), NOW + Duration::days(360))],
        profiles: vec![profile("p1", 0, 3)],
        mappings: vec![mapping("catch", 1_000_000, None, "p1", "r1")],
        regions: vec![region("r1", Health::Healthy)],
        settings: TenantSettings::default(),
        pending: Vec::new(),
        email_holders: Vec::new(),
        user: None,
    }
}

/// Adds events (ids in the order given), keeping the facts' newest-first order.
fn with(mut f: Facts, events: Vec<Event>) -> Facts {
    let base = f.events.iter().map(|e| e.id).max().unwrap_or(0);
    for (i, mut e) in events.into_iter().enumerate() {
        e.id = base + i as i64 + 1;
        f.events.push(e);
    }
    f.events.sort_by_key(|e| std::cmp::Reverse(e.id));
    f
}

fn event(at: OffsetDateTime, operation: &str, subject: Option<&str>, cause: Cause, detail: Option<&str>) -> Event {
    let (outcome, status) = match cause {
        Cause::Ok => (Outcome::Accepted, 200),
        Cause::TokenExpired | Cause::TokenRevoked => (Outcome::Unauthenticated, 401),
        Cause::UnknownPath => (Outcome::Refused, 404),
        Cause::ProfileFull => (Outcome::Refused, 403),
        Cause::RegionUnhealthy => (Outcome::Refused, 503),
        Cause::NoMappingMatched => (Outcome::Refused, 400),
        _ => (Outcome::Refused, 409),
    };
    Event {
        id: 0,
        at,
        tenant_id: Some("t1".into()),
        token_id: Some("tok1".into()),
        request_id: "r".into(),
        idp: Idp::Other,
        method: "POST".into(),
        path: "/scim/v2/Users".into(),
        operation: operation.into(),
        subject: subject.map(Into::into),
        outcome,
        cause,
        status,
        detail: detail.map(Into::into),
        duration_ms: 1,
        mentions: Vec::new(),
    }
}

fn ok(at: OffsetDateTime, subject: &str) -> Event {
    event(at, "create User", Some(subject), Cause::Ok, None)
}

fn codes_of(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
    findings.iter().map(|f| (f.code, f.severity)).collect()
}

fn only(findings: Vec<Finding>, code: &str) -> Finding {
    let mut matching: Vec<Finding> = findings.into_iter().filter(|f| f.code == code).collect();
    assert_eq!(matching.len(), 1, "{matching:#?}");
    matching.remove(0)
}

#[test]
fn a_healthy_tenant_has_no_findings() {
    let f = with(healthy(), (0..10).map(|i| ok(NOW - Duration::minutes(10 * i), &format!("u{i}"))).collect());
    let report = diagnose(&f);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!((report.exit_code(), report.status(), report.worst()), (0, "healthy", None));
    assert!(text::render(&report).contains("No problems found."));
}

#[test]
fn a_tenant_nothing_reached_yet_is_told_how_to_connect() {
    let f = healthy();
    let finding = only(checks::tenant(&f), codes::NO_REQUESTS_YET);
    assert_eq!(finding.severity, Severity::Info);
    assert!(finding.fix[0].contains("https://scim.example.com/scim/v2"), "{:?}", finding.fix);
    assert_eq!(diagnose(&f).exit_code(), 0);
}

#[test]
fn a_silence_longer_than_the_usual_rhythm_is_a_stall() {
    // Ten requests ten minutes apart (a rhythm), the last one at `last`.
    let last = NOW - Duration::hours(3);
    let traffic: Vec<Event> = (0..10).rev().map(|i| ok(last - Duration::minutes(10 * i), "u")).collect();
    let f = with(healthy(), traffic.clone());
    let finding = checks::traffic(&f).expect("stalled");
    assert_eq!((finding.code, finding.severity), (codes::STALLED, Severity::Warning));
    assert_eq!(finding.evidence["usual_interval_seconds"], 600);
    assert_eq!(finding.evidence["silent_for_seconds"], 3 * 3600);
    // An hour of silence is within max(3 × 10 min, 2 h).
    let f = Facts { now: last + Duration::hours(1), ..with(healthy(), traffic) };
    assert_eq!(checks::traffic(&f), None);
    // One burst is no rhythm: nothing can be said about its interval.
    let burst: Vec<Event> = (0..6).map(|i| ok(last + Duration::seconds(i), "u")).collect();
    assert_eq!(checks::traffic(&with(healthy(), burst)), None);
    // Quiet since before the window, known from the token's last use: worth knowing, no warning
    // (an IdP that pushes only changes is quiet while nothing changes).
    let mut f = healthy();
    f.tokens[0].last_used_at = Some(NOW - Duration::days(9));
    let finding = checks::traffic(&f).expect("stalled");
    assert_eq!((finding.code, finding.severity), (codes::STALLED, Severity::Info));
}

#[test]
fn a_wrong_base_url_is_an_error_until_requests_are_accepted_again() {
    let mut wrong = event(NOW - Duration::hours(2), "unknown", None, Cause::UnknownPath, None);
    wrong.path = "/scim/Users".into();
    let f = with(healthy(), vec![ok(NOW - Duration::hours(3), "a"), wrong.clone(), wrong.clone()]);
    let finding = only(checks::tenant(&f), codes::WRONG_URL);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.evidence["requests"], 2);
    assert_eq!(finding.evidence["paths"][0]["path"], "/scim/Users");
    assert_eq!(finding.evidence["paths"][0]["hint"], "the base URL is missing /v2");
    assert_eq!(finding.evidence["correct_base_url"], "https://scim.example.com/scim/v2");
    let fixed = with(f, vec![ok(NOW - Duration::hours(1), "b")]);
    assert_eq!(only(checks::tenant(&fixed), codes::WRONG_URL).severity, Severity::Info);
    // A wrong endpoint under the right base URL stands even when other requests succeed.
    let mut typo = wrong;
    typo.path = "/scim/v2/Userz".into();
    let f = with(healthy(), vec![typo, ok(NOW - Duration::hours(1), "b")]);
    assert_eq!(only(checks::tenant(&f), codes::WRONG_URL).severity, Severity::Error);
}

#[test]
fn an_expired_token_still_presented_names_its_prefix_until_a_valid_one_is_used() {
    let mut f = healthy();
    f.tokens.push(token("old", NOW - Duration::days(400), NOW - Duration::days(2)));
    let mut refused = event(NOW - Duration::hours(5), "list Users", None, Cause::TokenExpired, None);
    refused.token_id = Some("old".into());
    let f = with(f, vec![refused.clone(), refused]);
    let finding = only(checks::tenant(&f), codes::TOKEN_EXPIRED_IN_USE);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.evidence["tokens"][0]["prefix"], "scimd_00000old");
    assert_eq!(finding.evidence["tokens"][0]["requests"], 2);
    assert!(finding.title.contains("scimd_00000old"), "{}", finding.title);
    assert!(finding.fix.iter().any(|s| s.contains("scimd_0000tok1")), "the current token is named: {:?}", finding.fix);
    let switched = with(f, vec![ok(NOW - Duration::hours(1), "a")]);
    assert_eq!(only(checks::tenant(&switched), codes::TOKEN_EXPIRED_IN_USE).severity, Severity::Info);
}

#[test]
fn token_state_no_valid_token_and_expiry_within_30_days() {
    let mut f = healthy();
    f.tokens[0].revoked_at = Some(NOW - Duration::days(1));
    f.tokens[0].revoke_reason = Some(RevokeReason::Revoked);
    let finding = checks::token_validity(&f).expect("no valid token");
    assert_eq!((finding.code, finding.severity), (codes::NO_VALID_TOKEN, Severity::Error));
    assert_eq!(finding.evidence["latest"][0]["state"], "revoked");

    let mut f = healthy();
    f.tokens = vec![token("soon", NOW - Duration::days(355), NOW + Duration::days(10))];
    let finding = checks::token_validity(&f).expect("expiring");
    assert_eq!((finding.code, finding.severity), (codes::TOKEN_EXPIRING, Severity::Warning));
    assert_eq!(finding.evidence["days_left"], 10);
    assert!(finding.fix[0].contains("--keep-old-for"), "{:?}", finding.fix);

    // During a rotation overlap the old token is about to stop, but the new one lives on.
    let mut old = token("old", NOW - Duration::days(300), NOW + Duration::days(65));
    old.revoked_at = Some(NOW + Duration::days(1));
    old.revoke_reason = Some(RevokeReason::Rotated);
    f.tokens = vec![token("new", NOW, NOW + Duration::days(365)), old];
    assert_eq!(checks::token_validity(&f), None);
}

#[test]
fn no_mapping_matched_stands_until_the_user_is_accepted() {
    let detail =
        "none of the SCIM mappings matched user \"bob\": \"Finance\": department eq \"Finance\" (user has \"Sales\")";
    let f = with(
        healthy(),
        vec![event(NOW - Duration::hours(2), "create User", Some("bob"), Cause::NoMappingMatched, Some(detail))],
    );
    let finding = only(checks::tenant(&f), codes::NO_MAPPING_MATCHED);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.evidence["example_subjects"][0], "bob");
    assert!(finding.evidence["detail"].as_str().is_some_and(|d| d.contains("(user has \"Sales\")")));
    let settled = with(f, vec![ok(NOW - Duration::hours(1), "BOB")]);
    assert_eq!(only(checks::tenant(&settled), codes::NO_MAPPING_MATCHED).severity, Severity::Info);
}

#[test]
fn mapping_order_catch_all_and_unhealthy_targets() {
    let mut f = healthy();
    f.regions.push(region("r2", Health::Degraded));
    f.mappings = vec![
        mapping("finance", 10, Some("department eq \"Finance\""), "p1", "r2"),
        mapping("catch", 100, None, "p1", "r1"),
        mapping("late", 200, Some("title co \"x\""), "p1", "r1"),
    ];
    let findings = checks::tenant(&f);
    let late = only(findings.clone(), codes::UNREACHABLE_MAPPING);
    assert_eq!(late.severity, Severity::Warning);
    assert!(late.title.contains("mapping late") && late.title.contains("priority 100"), "{}", late.title);
    let unhealthy = only(findings, codes::MAPPING_REGION_UNHEALTHY);
    assert_eq!(unhealthy.severity, Severity::Warning);
    assert_eq!(unhealthy.evidence["mappings"][0], "mapping finance");

    f.mappings[1].enabled = false;
    let missing = only(checks::tenant(&f), codes::NO_CATCH_ALL);
    assert_eq!(missing.severity, Severity::Warning);
    assert!(missing.fix[0].contains("Enable the catch-all mapping \"mapping catch\""), "{:?}", missing.fix);
    assert!(checks::unreachable_mappings(&f).is_none(), "a disabled catch-all hides nothing");
}

#[test]
fn profile_capacity_is_an_error_with_refusals_or_held_users_and_a_warning_before() {
    let detail = "cannot provision user \"two\": the profile \"Profile p2\" is full (1 of 1 users).";
    let mut f = healthy();
    f.profiles.push(profile("p2", 1, 1));
    let full = with(
        f.clone(),
        vec![event(NOW - Duration::hours(1), "create User", Some("two"), Cause::ProfileFull, Some(detail))],
    );
    let finding = only(checks::tenant(&full), codes::PROFILE_FULL);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.evidence["profile"]["name"], "Profile p2");
    assert_eq!(finding.evidence["example_subjects"][0], "two");
    assert!(finding.fix[0].contains("Raise Max users of profile \"Profile p2\""), "{:?}", finding.fix);

    // Full, nobody refused yet: predicted.
    assert_eq!(codes_of(&checks::profiles(&f)), vec![(codes::PROFILE_FULL, Severity::Warning)]);
    f.profiles[1] = profile("p2", 10, 9);
    assert_eq!(codes_of(&checks::profiles(&f)), vec![(codes::PROFILE_NEARLY_FULL, Severity::Warning)]);
    f.profiles[1] = profile("p2", 10, 8);
    assert!(checks::profiles(&f).is_empty());
    // A held user makes it an error even without a refusal.
    f.pending.push(PendingUser {
        id: "u9".into(),
        user_name: "nine".into(),
        since: NOW,
        cause: Some(Cause::ProfileFull),
        profile_id: Some("p2".into()),
        region_id: Some("r1".into()),
    });
    let held = only(checks::profiles(&f), codes::PROFILE_FULL);
    assert_eq!((held.severity, held.evidence["pending_users"]["count"].as_u64()), (Severity::Error, Some(1)));
}

#[test]
fn the_three_email_conflicts_are_separate_and_elsewhere_reveals_nothing() {
    let mut f = healthy();
    f.email_holders.push(EmailHolder {
        email: "old@corp.com".into(),
        user: UserSummary { id: "u-old".into(), user_name: "old".into(), external_id: None, placement: None },
    });
    let f = with(
        f,
        vec![
            event(
                NOW,
                "create User",
                Some("a"),
                Cause::EmailInUseInTenant,
                Some("the email \"same@corp.com\" is already used"),
            ),
            event(
                NOW,
                "create User",
                Some("b"),
                Cause::EmailHeldByPreservedUser,
                Some("the email \"old@corp.com\" belongs"),
            ),
            event(
                NOW,
                "create User",
                Some("c"),
                Cause::EmailInUseElsewhere,
                Some("the email \"x@corp.com\" is already in use elsewhere"),
            ),
        ],
    );
    let findings = checks::tenant(&f);
    for code in [codes::EMAIL_IN_USE_IN_TENANT, codes::EMAIL_HELD_BY_PRESERVED_USER, codes::EMAIL_IN_USE_ELSEWHERE] {
        assert_eq!(only(findings.clone(), code).severity, Severity::Error, "{code}");
    }
    let preserved = only(findings.clone(), codes::EMAIL_HELD_BY_PRESERVED_USER);
    assert_eq!(preserved.evidence["emails"][0]["held_by"]["id"], "u-old");
    assert_eq!(preserved.evidence["emails"][0]["purge"], "DELETE /admin/api/v1/tenants/t1/users/u-old");
    let elsewhere = only(findings, codes::EMAIL_IN_USE_ELSEWHERE);
    assert_eq!(elsewhere.evidence["emails"], serde_json::json!(["x@corp.com"]));
    assert!(!elsewhere.evidence.to_string().contains("held_by"));
}

#[test]
fn an_unhealthy_region_with_refusals_is_an_error_and_settles_when_they_are_accepted() {
    let detail = "cannot provision user \"carol\" now: the storage region \"region-r1\" is down.";
    let mut f = healthy();
    f.regions[0].health = Health::Down;
    let f = with(
        f,
        vec![event(NOW - Duration::hours(1), "create User", Some("carol"), Cause::RegionUnhealthy, Some(detail))],
    );
    let findings = checks::tenant(&f);
    let finding = only(findings.clone(), codes::REGION_UNHEALTHY);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.evidence["region"]["health"], "down");
    assert!(findings.iter().all(|f| f.code != codes::MAPPING_REGION_UNHEALTHY), "one finding per region");
    let mut recovered = with(f, vec![ok(NOW, "carol")]);
    recovered.regions[0].health = Health::Healthy;
    assert_eq!(codes_of(&checks::regions(&recovered)), vec![(codes::REGION_UNHEALTHY, Severity::Info)]);
}

fn ask(f: Facts, query: &str, found: Option<UserSummary>, events: Vec<Event>) -> Facts {
    Facts { user: Some(UserFacts { query: query.into(), found, events }), ..f }
}

#[test]
fn a_named_user_never_heard_of_is_not_assigned_in_the_idp() {
    let f = ask(Facts { idp: Some(Idp::Okta), ..healthy() }, "alice@corp.com", None, Vec::new());
    let report = diagnose(&f);
    let first = &report.findings[0];
    assert_eq!((first.code, first.severity), (codes::NEVER_HEARD_OF, Severity::Error));
    assert!(first.title.contains("alice@corp.com") && first.title.contains("not assigned"), "{}", first.title);
    assert!(first.fix[0].contains("Assignments tab"), "{:?}", first.fix);
    let f = ask(Facts { idp: Some(Idp::EntraId), ..healthy() }, "alice@corp.com", None, Vec::new());
    assert!(diagnose(&f).findings[0].fix[0].contains("Users and groups"));
    assert_eq!(diagnose(&f).exit_code(), 2);
}

#[test]
fn a_named_user_refused_or_found_is_explained() {
    let refused = event(NOW, "create User", Some("bob"), Cause::ProfileFull, Some("the profile \"X\" is full"));
    let f = ask(healthy(), "bob", None, vec![refused]);
    let finding = checks::user(&f).expect("finding");
    assert_eq!((finding.code, finding.severity), (codes::USER_REFUSED, Severity::Error));
    assert_eq!(finding.evidence["cause"], "profile_full");

    let placement = Placement {
        state: UserState::Pending,
        since: NOW,
        profile_id: Some("p1".into()),
        region_id: Some("r1".into()),
        pending_cause: Some(Cause::RegionUnhealthy),
        preserved_by: None,
        managed_by: Manager::Idp,
        claimed_email: Some("bob@corp.com".into()),
    };
    let found =
        UserSummary { id: "u1".into(), user_name: "bob".into(), external_id: None, placement: Some(placement.clone()) };
    let finding = checks::user(&ask(healthy(), "bob", Some(found.clone()), Vec::new())).expect("finding");
    assert_eq!((finding.code, finding.severity), (codes::USER_FOUND, Severity::Info));
    assert_eq!(finding.evidence["pending_cause"], "region_unhealthy");
    assert_eq!(finding.evidence["profile"]["id"], "p1");
    assert!(finding.title.contains("pending"), "{}", finding.title);

    let active = UserSummary {
        placement: Some(Placement {
            state: UserState::Active,
            pending_cause: None,
            preserved_by: None,
            ..placement.clone()
        }),
        ..found.clone()
    };
    let finding = checks::user(&ask(healthy(), "bob", Some(active), Vec::new())).expect("finding");
    assert!(finding.title.contains("bob is active in profile \"Profile p1\""), "{}", finding.title);

    let by_admin = UserSummary {
        placement: Some(Placement {
            state: UserState::Preserved,
            preserved_by: Some(Actor::Admin),
            pending_cause: None,
            ..placement
        }),
        ..found
    };
    let finding = checks::user(&ask(healthy(), "bob", Some(by_admin), Vec::new())).expect("finding");
    assert!(finding.fix[0].contains("/users/u1/restore"), "{:?}", finding.fix);
}

#[test]
fn exit_codes_and_text_follow_the_worst_finding() {
    let mut f = healthy();
    f.tokens = vec![token("soon", NOW - Duration::days(355), NOW + Duration::days(10))];
    let report = diagnose(&with(f.clone(), vec![ok(NOW, "a")]));
    assert_eq!((report.exit_code(), report.status()), (1, "warnings"));
    f.tokens.clear();
    let report = diagnose(&with(f, vec![ok(NOW, "a")]));
    assert_eq!((report.exit_code(), report.worst()), (2, Some(Severity::Error)));
    let text = text::render(&report);
    assert!(text.contains("ERROR") && text.contains("[no_valid_token]") && text.contains("  1. "), "{text}");
    assert!(text.contains("Result: errors (1 errors, 0 warnings, 0 info)"), "{text}");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!((json["status"].as_str(), json["exit_code"].as_u64()), (Some("errors"), Some(2)));
    assert_eq!(json["findings"][0]["severity"], "error");
}
