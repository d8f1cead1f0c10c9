//! Who is calling: the tenant a bearer token belongs to, and the base URL to build links with.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use scimd_domain::tenant::Tenant;

use crate::AppState;
use crate::edge::{NoteSlot, ScimFailure};

/// An authenticated SCIM caller.
pub struct ScimCaller {
    /// The token's tenant.
    pub tenant: Tenant,
    /// The SCIM base URL, without a trailing slash (`https://host/scim/v2`).
    pub base_url: String,
    /// The request's provisioning-log note, for the handler to add the subject to.
    pub note: NoteSlot,
}

/// The SCIM base URL for a request: the configured public URL, else built from `Host`.
pub fn base_url(state: &AppState, parts: &Parts) -> String {
    advertised_base(state, &parts.headers).unwrap_or_else(|| "http://localhost/scim/v2".to_owned())
}

/// The SCIM base URL as a request shows the server: the configured public URL, else the `Host`
/// it reached, only when that is a plain authority (so that nothing a client sends can change
/// the meaning of a link); `None` otherwise.
pub(crate) fn advertised_base(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &state.public_url {
        return Some(format!("{}/scim/v2", url.trim_end_matches('/')));
    }
    let host = headers.get(header::HOST)?.to_str().ok().filter(|h| is_authority(h))?;
    Some(format!("http://{host}/scim/v2"))
}

/// Whether a `Host` header is a plain `host[:port]` (name, IPv4 or bracketed IPv6): nothing that
/// could change the meaning of the links built from it.
fn is_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // A header that is not visible ASCII is present but malformed, not missing.
        let header_value = |name| parts.headers.get(name).map(|v| v.to_str().unwrap_or(""));
        let auth =
            state.service.authenticate(header_value(header::AUTHORIZATION), header_value(header::USER_AGENT)).await?;
        let note = NoteSlot::of(&parts.extensions);
        note.caller(&auth.tenant.id, &auth.token.id);
        state.service.admit_request(&auth.tenant.id).await?;
        Ok(ScimCaller { tenant: auth.tenant, base_url: base_url(state, parts), note })
    }
}
