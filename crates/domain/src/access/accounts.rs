//! Console accounts: email and an argon2 password, a role; sessions that sign them in; and the
//! one-time set-up code that creates the first operator.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{Principal, Role};
use crate::store::StoreError;
use crate::token::{hash_token, hashes_match};
use crate::{DomainError, Result, Service};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work of one sign-in).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
const SESSION_SECRET_LEN: usize = 43;
const SETUP_CODE_SETTING: &str = "console_setup_code_sha256";

/// A person who signs in to the console.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The account's id.
    pub id: String,
    /// Lower-case email; what they sign in with.
    pub email: String,
    /// The argon2 PHC string; never serialized.
    #[serde(skip)]
    pub password_hash: String,
    /// What they may reach.
    #[serde(flatten)]
    pub role: Role,
    /// When the account was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last successful sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in_at: Option<OffsetDateTime>,
}

/// A signed-in browser: the store keeps the hash of its cookie and its CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie's secret.
    pub hash: String,
    /// The account signed in.
    pub account_id: String,
    /// Every change form must send this back.
    pub csrf: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

// Never the password hash, the session's hash or its CSRF token, not even in a debug log.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account_id", &self.account_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A session just created: the cookie secret exists only here and in the browser.
pub struct NewSession {
    /// The cookie's value.
    pub secret: String,
    /// The stored session.
    pub session: Session,
}

/// A signed-in request: the session and who it is.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session.
    pub session: Session,
    /// The account, as a principal.
    pub principal: Principal,
}

fn email_taken(e: StoreError, account: &Account) -> DomainError {
    match e {
        StoreError::Conflict { .. } => {
            DomainError::Conflict(format!("an account with the email {} exists", account.email))
        }
        other => other.into(),
    }
}

/// An email as accounts keep it, or why it is not one.
pub fn normalise_account_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && email.len() <= 254 => Ok(email),
        _ => Err(DomainError::Invalid(format!("\"{email}\" is not an email address"))),
    }
}

fn check_password(password: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!("the password must be at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!("the password must be at most {MAX_PASSWORD_LEN} bytes")));
    }
    Ok(())
}

impl Service {
    /// Runs argon2 work on the blocking pool, at most two at once.
    async fn password_work<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let busy = || DomainError::Store(StoreError::Backend("password hashing was interrupted".into()));
        let _permit = self.password_work.acquire().await.map_err(|_| busy())?;
        tokio::task::spawn_blocking(work).await.map_err(|_| busy())
    }

    async fn hash_password(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        self.random.fill(&mut salt);
        let password = password.to_owned();
        self.password_work(move || {
            Argon2::default().hash_password_with_salt(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await?
        .map_err(|e| DomainError::Store(StoreError::Backend(format!("argon2: {e}"))))
    }

    /// Makes an account. A tenant admin's tenant must exist.
    pub async fn create_account(&self, email: &str, password: &str, role: Role) -> Result<Account> {
        let account = self.new_account(email, password, role).await?;
        self.store.insert_account(&account).await.map_err(|e| email_taken(e, &account))?;
        Ok(account)
    }

    /// A checked account, not yet stored.
    async fn new_account(&self, email: &str, password: &str, role: Role) -> Result<Account> {
        let email = normalise_account_email(email)?;
        check_password(password)?;
        if let Role::TenantAdmin(tenant) = &role {
            self.tenant(tenant).await?;
        }
        Ok(Account {
            id: self.new_id(),
            email,
            password_hash: self.hash_password(password).await?,
            role,
            created_at: self.clock.now(),
            last_sign_in_at: None,
        })
    }

    /// Every account.
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.store.accounts().await?)
    }

    /// An account by id.
    pub async fn account(&self, id: &str) -> Result<Account> {
        self.store.account(id).await?.ok_or_else(|| DomainError::NotFound(format!("no account has the id {id}")))
    }

    /// Deletes an account, its sessions and its API keys (operators only). Nobody deletes the
    /// account they are using, and the last operator stays, so the cloud is never left without one.
    pub async fn delete_account(&self, principal: &Principal, id: &str) -> Result<()> {
        principal.require_operator()?;
        let account = self.account(id).await?;
        if principal.account_id.as_deref() == Some(id) {
            return Err(DomainError::Conflict("you cannot delete the account you are signed in with".into()));
        }
        if account.role == Role::Operator
            && self.store.accounts().await?.iter().filter(|a| a.role == Role::Operator).count() <= 1
        {
            return Err(DomainError::Conflict("this is the last operator account; create another one first".into()));
        }
        self.store.delete_account(id).await.map_err(|e| match e {
            StoreError::NotFound => DomainError::NotFound(format!("no account has the id {id}")),
            other => other.into(),
        })
    }

    /// Checks an email and password and opens a session; `None` when they do not match. Unknown
    /// email and wrong password are refused alike, after the same argon2 work, so sign-in does
    /// not reveal which accounts exist.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Option<(NewSession, Account)>> {
        let account = match normalise_account_email(email) {
            Ok(email) => self.store.account_by_email(&email).await?,
            Err(_) => None,
        };
        let stored = account.as_ref().map_or_else(|| DUMMY_HASH.clone(), |a| a.password_hash.clone());
        // An over-long password is refused after the same work as any other.
        let candidate = if password.len() <= MAX_PASSWORD_LEN { password.to_owned() } else { String::new() };
        let checked = self
            .password_work(move || Argon2::default().verify_password(candidate.as_bytes(), stored.as_str()).is_ok());
        let valid = checked.await? && password.len() <= MAX_PASSWORD_LEN;
        let Some(account) = account.filter(|_| valid) else { return Ok(None) };
        let now = self.clock.now();
        self.store.touch_account(&account.id, now).await?;
        let secret = self.random_string(SESSION_SECRET_LEN);
        let session = Session {
            hash: hash_token(&secret),
            account_id: account.id.clone(),
            csrf: self.random_string(SESSION_SECRET_LEN),
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
        };
        self.store.insert_session(&session).await?;
        Ok(Some((NewSession { secret, session }, account)))
    }

    /// The live session a cookie secret opens, if any.
    pub async fn session(&self, secret: &str) -> Result<Option<SignedIn>> {
        let Some((session, account)) = self.store.session(&hash_token(secret)).await? else { return Ok(None) };
        if session.expires_at <= self.clock.now() {
            self.store.delete_session(&session.hash).await?;
            return Ok(None);
        }
        Ok(Some(SignedIn { principal: Principal::account(&account), session }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, session: &Session) -> Result<()> {
        Ok(self.store.delete_session(&session.hash).await?)
    }

    /// While no operator account exists, a fresh one-time code for the console's set-up page
    /// (replacing any earlier one); `None` once an operator exists.
    pub async fn console_setup_code(&self) -> Result<Option<String>> {
        if self.store.has_operator_account().await? {
            return Ok(None);
        }
        let code = self.random_string(32);
        self.store.set_setting(SETUP_CODE_SETTING, &hash_token(&code)).await?;
        Ok(Some(code))
    }

    /// Whether `code` is the live set-up code.
    pub async fn setup_code_valid(&self, code: &str) -> Result<bool> {
        if self.store.has_operator_account().await? {
            return Ok(false);
        }
        let Some(stored) = self.store.setting(SETUP_CODE_SETTING).await? else { return Ok(false) };
        Ok(!stored.is_empty() && hashes_match(&stored, &hash_token(code)))
    }

    /// Creates the first operator with the set-up code, which then stops working.
    pub async fn set_up_first_operator(&self, code: &str, email: &str, password: &str) -> Result<Account> {
        if !self.setup_code_valid(code).await? {
            return Err(DomainError::Invalid(
                "this set-up link has been used or replaced; restart scimd for a new one, or use \
                 `scimd admin create --operator`"
                    .into(),
            ));
        }
        let account = self.new_account(email, password, Role::Operator).await?;
        // Code checked and spent, and the account stored, in one transaction: two people
        // submitting the link at once cannot both become operators.
        let created = self
            .store
            .create_first_operator(&account, SETUP_CODE_SETTING, &hash_token(code))
            .await
            .map_err(|e| email_taken(e, &account))?;
        if !created {
            return Err(DomainError::Invalid("this set-up link has just been used; sign in instead".into()));
        }
        Ok(account)
    }
}

/// An argon2 hash verified against when the email is unknown, so that the answer takes as long
/// as for a known email.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password_with_salt(b"no account has this password", b"scimd-dummy-salt")
        .map(|h| h.to_string())
        .expect("argon2 hashes a constant password with a constant salt")
});
