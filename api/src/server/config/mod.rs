//! `cloverleaf.toml`: who may call the API, with which roles.
//!
//! ```toml
//! [[users]]
//! name = "mia"
//! roles = ["sales.manager"]
//! token_sha256 = "9f86d0...0f00a08"   # sha256 of the bearer token, lowercase hex
//! password_argon2 = "$argon2id$v=19$m=19456,t=2,p=1$...$..."   # optional: `cloverleaf hash-password`
//! ```
//!
//! Tokens are stored only as sha256 hashes. A password, optional, is a second way to sign in to
//! the pages (never to the API): it is stored only as an argon2id PHC string, which
//! `cloverleaf hash-password` makes; anything else in its place, a plain password above all, is
//! refused when the file is read. [`Users::verify_password`] checks one, and costs as much for a
//! name nobody has as for a real user's. Two roles are the server's own: `admin` deploys,
//! cancels and handles incidents; `worker` fetches and completes jobs. The others are the
//! organisation's roles of `roles.flow`, offered human tasks.
//!
//! With no file, [`create_demo`] writes one for demo users with fresh random tokens, and puts
//! the plain tokens in a separate file beside it, readable by its owner only.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{ARGON2ID_IDENT, Argon2, Params};
use cloverleaf_engine::store::sha256_hex;
use serde::{Deserialize, Serialize};

use crate::web::i18n::Lang;

/// The role that deploys processes, cancels instances and retries incidents.
pub const ADMIN: &str = "admin";
/// The role of external workers (the job API).
pub const WORKER: &str = "worker";

/// The file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Where notifications for people (tasks offered, handed over, reminded of, overdue) are
    /// delivered; none: they are kept for `GET /v1/notifications`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookEntry>,
    /// The mail relay notifications go out through, when any go by email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpEntry>,
    /// Which kinds of notification go by email, and to whom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email: Vec<EmailRoute>,
}

/// The mail relay (`[smtp]`): a local MTA or a relay on a trusted network, spoken to in plain
/// SMTP. There is no TLS here on purpose: the relay carries mail onward over TLS itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpEntry {
    /// The relay's host name or address.
    pub host: String,
    /// Its port; 25 when absent.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The sender address (`MAIL FROM` and `From:`).
    pub from: String,
    /// The sender's display name (`Cloverleaf` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The name this server gives itself in `EHLO`; `localhost` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<String>,
}

fn default_smtp_port() -> u16 {
    25
}

/// One `[[email]]` route: the kinds it carries and where they go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRoute {
    /// The kinds it carries (see [`NOTIFICATION_KINDS`]); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Fixed addresses (a shared mailbox); when empty, the people concerned: the users a task
    /// is for or an alert names (by their `email`), the customer a letter is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
}

impl EmailRoute {
    /// True when the route carries `kind`.
    pub fn carries(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }
}

/// The email channel as configured and checked: the relay and the routes.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The relay.
    pub smtp: SmtpEntry,
    /// The routes, at least one.
    pub routes: Vec<EmailRoute>,
}

/// A receiver of notifications: an HTTP endpoint that gets each one as a signed JSON POST.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// `https://...` (or `http://` on a trusted network).
    pub url: String,
    /// The shared key of the HMAC-SHA256 signature, at least 16 characters.
    pub secret: String,
    /// The kinds it wants (`task_created`, `task_assigned`, `task_reminder`, `task_overdue`,
    /// `alert_opened`, `alert_cleared`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// One user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The user name tasks and history record.
    pub name: String,
    /// Roles: `admin`, `worker`, or the organisation's (`sales.manager`...).
    #[serde(default)]
    pub roles: Vec<String>,
    /// sha256 of the bearer token, lowercase hex.
    pub token_sha256: String,
    /// The password for the pages' sign-in, as an argon2id PHC string
    /// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`, from `cloverleaf hash-password`); none when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_argon2: Option<String>,
    /// The IANA time zone the pages show times in (`Asia/Shanghai`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Where notifications for this user are mailed; none: no email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The language of those emails: `en` or `zh-CN`; English when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: String,
    /// The roles.
    pub roles: Vec<String>,
    /// The time zone the pages show times in.
    pub time_zone: Option<chrono_tz::Tz>,
    /// Where notifications for this user are mailed.
    pub email: Option<String>,
    /// The language of those emails.
    pub language: Lang,
}

impl User {
    /// True when the user holds `role`.
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The roles as string slices, as the engine takes them.
    pub fn role_refs(&self) -> Vec<&str> {
        self.roles.iter().map(String::as_str).collect()
    }
}

/// The users by token hash, and the password hashes of those who have one.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_hash: HashMap<String, Arc<User>>,
    /// By user name: the argon2id PHC string, checked well-formed when the file was read.
    passwords: HashMap<String, (String, Arc<User>)>,
}

impl Users {
    /// Checks the file: names unique and non-empty, hashes well-formed and unique, passwords
    /// argon2id hashes.
    pub fn from_config(config: &ConfigFile) -> Result<Users> {
        let mut by_hash = HashMap::new();
        let mut passwords = HashMap::new();
        let mut names = BTreeSet::new();
        for entry in &config.users {
            let name = entry.name.trim();
            if name.is_empty() {
                bail!("a user has an empty name");
            }
            match canonical_user(name) {
                Some(canonical) if canonical == name => {}
                Some(canonical) => bail!("user `{name}` must be written `{canonical}`: user names are lowercase"),
                None => bail!(
                    "user `{name}`: a user name is 1 to 64 letters, digits, `.`, `_`, `-` or `@` (tasks and history compare names exactly)"
                ),
            }
            if !names.insert(name.to_string()) {
                bail!("user `{name}` is listed twice");
            }
            let hash = entry.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("user `{name}`: token_sha256 must be 64 hex digits (the sha256 of the token), not a plain token");
            }
            if let Some(role) = entry.roles.iter().find(|r| r.trim().is_empty()) {
                bail!("user `{name}` has an empty role {role:?}");
            }
            let time_zone = match &entry.time_zone {
                None => None,
                Some(zone) => Some(zone.parse::<chrono_tz::Tz>().map_err(|_| {
                    anyhow::anyhow!(
                        "user `{name}`: `{zone}` is not a time zone (write an IANA name such as Asia/Shanghai)"
                    )
                })?),
            };
            let email = match &entry.email {
                None => None,
                Some(address) => match check_address(address) {
                    Ok(address) => Some(address),
                    Err(why) => bail!("user `{name}`: email {why}"),
                },
            };
            let language = match entry.language.as_deref() {
                None => Lang::En,
                Some(tag) => match Lang::parse(tag) {
                    Some(lang) if tag == lang.tag() => lang,
                    _ => bail!("user `{name}`: language `{tag}` is not one of en, zh-CN"),
                },
            };
            let user =
                Arc::new(User { name: name.to_string(), roles: entry.roles.clone(), time_zone, email, language });
            if let Some(phc) = &entry.password_argon2 {
                let phc = phc.trim();
                if let Err(why) = check_argon2id(phc) {
                    bail!(
                        "user `{name}`: password_argon2 {why}; run `cloverleaf hash-password`, type the password, and put what it prints there"
                    );
                }
                passwords.insert(name.to_string(), (phc.to_string(), Arc::clone(&user)));
            }
            if by_hash.insert(hash, user).is_some() {
                bail!("user `{name}` shares a token with another user");
            }
        }
        Ok(Users { by_hash, passwords })
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<Arc<User>> {
        self.by_hash.get(&hash_token(token)).cloned()
    }

    /// The user a (name, password) pair belongs to, for the pages' sign-in. The name is taken in
    /// its one spelling ([`canonical_user`]). For a name nobody has, or a user without a
    /// password, one argon2 check runs all the same (against [`DUMMY_ARGON2`]) so that the time
    /// taken does not tell which names exist; the answer is then `None`.
    ///
    /// Slow on purpose (tens of milliseconds): call it off the async threads.
    pub fn verify_password(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let known = canonical_user(name).and_then(|name| self.passwords.get(&name));
        let phc = known.map_or(DUMMY_ARGON2, |(phc, _)| phc.as_str());
        let matches = PasswordHash::new(phc)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok());
        let (_, user) = known?;
        matches.then(|| Arc::clone(user))
    }

    /// True when a user of this name may call the API.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The user of this name (in its one spelling, see [`canonical_user`]).
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        let name = canonical_user(name)?;
        self.by_hash.values().find(|u| u.name == name).cloned()
    }

    /// Every user, by name.
    pub fn all(&self) -> Vec<Arc<User>> {
        let mut all: Vec<Arc<User>> = self.by_hash.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when nobody may call the API.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A user name in its one spelling: trimmed and lowercase, so that `" Sue"` and `"sue"` are the
/// same person wherever names are compared (`not by`, assignees, substitutes); `None` for a name
/// no user can have.
pub fn canonical_user(name: &str) -> Option<String> {
    let name = name.trim().to_lowercase();
    let fits = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    fits.then_some(name)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The hash [`Users::verify_password`] checks a password against when the name has none: argon2id
/// with the parameters [`hash_password`] uses, of 32 random bytes that were thrown away.
pub const DUMMY_ARGON2: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$CA1LDCFf0N8BJ9/HnYVymQ$U08WQ2WKERKCcy+7e35sh+yF9OI0tNDbABK//xzrS4c";

/// The most memory one password check may ask for, in KiB (1 GiB): a typo in `m=` should not
/// take the server down at the first sign-in.
const MAX_ARGON2_KIB: u32 = 1024 * 1024;

/// The stored form of a password: argon2id with the crate's default parameters (19 MiB, two
/// passes, one lane) and a fresh random salt from the operating system, as a PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Why `phc` is not a well-formed argon2id PHC string with a salt, a hash and parameters the
/// crate accepts; the words follow `password_argon2`.
fn check_argon2id(phc: &str) -> std::result::Result<(), String> {
    const FORM: &str = "$argon2id$v=19$m=...,t=...,p=...$salt$hash";
    if !phc.starts_with('$') {
        return Err(format!("must be an argon2id hash ({FORM}), never a plain password"));
    }
    let hash = PasswordHash::new(phc).map_err(|e| format!("is not a well-formed PHC string ({FORM}): {e}"))?;
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(format!("is a `{}` hash; only argon2id is accepted", hash.algorithm));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(format!("lacks its salt or its hash ({FORM})"));
    }
    match hash.version {
        Some(0x13) => {}
        Some(other) => return Err(format!("must be argon2id version 19 (`v=19`), not `v={other}`")),
        None => return Err("must say its argon2id version, `v=19`".to_string()),
    }
    let params = Params::try_from(&hash).map_err(|e| format!("has parameters argon2 refuses: {e}"))?;
    if params.m_cost() > MAX_ARGON2_KIB {
        return Err(format!("asks for {} KiB of memory per sign-in, more than the 1 GiB allowed", params.m_cost()));
    }
    Ok(())
}

/// A fresh random token: 32 bytes from the operating system, hex, with a recognisable prefix.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    Ok(format!("clv_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// The webhooks of the configuration file, checked: a URL that is not http(s), a short secret or
/// an unknown kind is refused with what to write instead.
pub fn load_webhooks(path: &Path) -> Result<Vec<WebhookEntry>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))?;
    for hook in &config.webhooks {
        check_webhook(hook).with_context(|| format!("in {}", path.display()))?;
    }
    Ok(config.webhooks)
}

/// The kinds of notification a webhook or an email route may ask for: for people, then the
/// customer letters ([`LETTER_KINDS`]).
pub const NOTIFICATION_KINDS: &[&str] = &[
    "task_created",
    "task_assigned",
    "task_reminder",
    "task_overdue",
    "alert_opened",
    "alert_cleared",
    "invoice_notice",
    "dunning_letter",
    "refund_notice",
];

/// The kinds that are letters to customers, written by the sub-ledger to its outbox.
pub const LETTER_KINDS: &[&str] = &["invoice_notice", "dunning_letter", "refund_notice"];

/// The email channel of the configuration file, checked; `None` when it has no `[smtp]`.
pub fn load_email(path: &Path) -> Result<Option<EmailConfig>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))?;
    email_config(&config).with_context(|| format!("in {}", path.display()))
}

/// The email channel of `config`, checked: a relay without routes, routes without a relay, a
/// malformed address or an unknown kind is refused with what to write instead.
pub fn email_config(config: &ConfigFile) -> Result<Option<EmailConfig>> {
    let Some(smtp) = &config.smtp else {
        if !config.email.is_empty() {
            bail!("[[email]] routes need an [smtp] relay: add [smtp] with host and from");
        }
        return Ok(None);
    };
    if config.email.is_empty() {
        bail!("[smtp] is set but no [[email]] route says which notifications go by mail: add one with `kinds`");
    }
    let host = smtp.host.trim();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        bail!("[smtp] host `{host}` is not a host name or address (write host = \"127.0.0.1\")");
    }
    if smtp.port == 0 {
        bail!("[smtp] port 0 is not a port (25 is the default; a local relay often listens on 25 or 587)");
    }
    let from = check_address(&smtp.from).map_err(|why| anyhow::anyhow!("[smtp] from {why}"))?;
    if let Some(hello) = &smtp.hello
        && (hello.is_empty() || !hello.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        bail!("[smtp] hello `{hello}` is not a host name (letters, digits, `.` and `-`)");
    }
    if let Some(name) = &smtp.from_name
        && name.chars().any(char::is_control)
    {
        bail!("[smtp] from_name holds a control character");
    }
    let mut routes = Vec::new();
    for route in &config.email {
        if let Some(kind) = route.kinds.iter().find(|k| !NOTIFICATION_KINDS.contains(&k.as_str())) {
            bail!(
                "an [[email]] route asks for `{kind}`, which is not a kind of notification ({})",
                NOTIFICATION_KINDS.join(", ")
            );
        }
        let to = route
            .to
            .iter()
            .map(|a| check_address(a).map_err(|why| anyhow::anyhow!("an [[email]] route's `to` {why}")))
            .collect::<Result<Vec<_>>>()?;
        routes.push(EmailRoute { kinds: route.kinds.clone(), to });
    }
    let smtp = SmtpEntry { host: host.to_string(), from, ..smtp.clone() };
    Ok(Some(EmailConfig { smtp, routes }))
}

/// `address` trimmed, when it is a plain mail address (`name@example.com`: ASCII, one `@`, no
/// spaces, brackets or quotes, so that it goes into a header or an SMTP command as it is); else
/// why not, in words that follow the field's name.
pub fn check_address(address: &str) -> std::result::Result<String, String> {
    let address = address.trim();
    let refuse = || {
        Err(format!(
            "`{}` is not a plain mail address (write name@example.com)",
            address.chars().filter(|c| !c.is_control()).collect::<String>()
        ))
    };
    let Some((local, domain)) = address.split_once('@') else { return refuse() };
    let allowed = |c: char| c.is_ascii_graphic() && !"<>()[]\\,;:\"@".contains(c);
    let dotted = |part: &str| !part.is_empty() && part.split('.').all(|p| !p.is_empty());
    if address.len() > 254
        || local.len() > 64
        || !dotted(local)
        || !dotted(domain)
        || !domain.contains('.') && domain != "localhost"
        || !local.chars().all(allowed)
        || !domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    {
        return refuse();
    }
    Ok(address.to_string())
}

fn check_webhook(hook: &WebhookEntry) -> Result<()> {
    let url = hook.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("the webhook URL `{url}` is not http(s): write https://host/path");
    }
    if hook.secret.chars().count() < 16 {
        bail!("the secret of the webhook {url} is shorter than 16 characters: use a long random one");
    }
    if let Some(kind) = hook.kinds.iter().find(|k| !NOTIFICATION_KINDS.contains(&k.as_str())) {
        bail!(
            "the webhook {url} asks for `{kind}`, which is not a kind of notification ({})",
            NOTIFICATION_KINDS.join(", ")
        );
    }
    Ok(())
}

/// Reads and checks the configuration file.
pub fn load(path: &Path) -> Result<Users> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))?;
    let users = Users::from_config(&config).with_context(|| format!("in {}", path.display()))?;
    if users.is_empty() {
        bail!("{} lists no users: nobody could call the API", path.display());
    }
    Ok(users)
}

/// The demo company's time zone: its people read times in it, and its books are kept in it.
pub const DEMO_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// The demo organisation: (user, roles).
pub const DEMO_USERS: &[(&str, &[&str])] = &[
    ("sam", &["sales.rep"]),
    ("mia", &["sales.manager"]),
    ("dora", &["sales.director"]),
    ("cora", &["finance.credit_controller"]),
    ("arlo", &["finance.ar_clerk"]),
    ("lou", &["logistics.coordinator"]),
    ("carl", &["finance.cfo", "finance.controller"]),
    ("ada", &[ADMIN]),
    ("vera", &["auditor"]),
    ("robot", &[WORKER]),
];

/// What [`create_demo`] wrote.
#[derive(Debug, Clone)]
pub struct Created {
    /// The configuration (hashes only).
    pub config: PathBuf,
    /// The plain tokens (mode 0600).
    pub tokens: PathBuf,
    /// The users and their plain tokens.
    pub users: Vec<(String, String)>,
}

/// Where [`create_demo`] puts the plain tokens for a configuration at `config`.
pub fn tokens_path(config: &Path) -> PathBuf {
    let stem = config.file_stem().map_or_else(|| "cloverleaf".into(), |s| s.to_string_lossy().into_owned());
    config.with_file_name(format!("{stem}.tokens"))
}

/// Writes a configuration for [`DEMO_USERS`] with fresh tokens (hashed) at `path`, and the plain
/// tokens beside it, readable by the owner only. Refuses to overwrite either file.
pub fn create_demo(path: &Path) -> Result<Created> {
    let tokens_file = tokens_path(path);
    let mut users = Vec::new();
    let mut config = ConfigFile::default();
    for (name, roles) in DEMO_USERS {
        let token = new_token()?;
        config.users.push(UserEntry {
            name: (*name).to_string(),
            roles: roles.iter().map(|r| (*r).to_string()).collect(),
            token_sha256: hash_token(&token),
            password_argon2: None,
            time_zone: Some(DEMO_ZONE.name().to_string()),
            email: None,
            language: None,
        });
        users.push(((*name).to_string(), token));
    }
    let mut tokens_text = String::from(
        "# Bearer tokens of the demo users (the server keeps only their hashes). Hand each to its user,\n\
         # then delete this file.\n",
    );
    for ((name, token), (_, roles)) in users.iter().zip(DEMO_USERS) {
        tokens_text.push_str(&format!("{name} = \"{token}\"   # {}\n", roles.join(", ")));
    }
    write_new(&tokens_file, tokens_text.as_bytes(), true)?;
    let header = "# Cloverleaf server configuration: users, their roles, and the sha256 of their bearer tokens.\n\
                  # Generated with fresh random tokens; the plain tokens were written once to a separate file.\n\n";
    let body = toml::to_string_pretty(&config).context("cannot write the configuration")?;
    if let Err(e) = write_new(path, format!("{header}{body}").as_bytes(), false) {
        // Without the configuration the tokens are useless: do not leave them lying around.
        let _ = std::fs::remove_file(&tokens_file);
        return Err(e);
    }
    Ok(Created { config: path.to_path_buf(), tokens: tokens_file, users })
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
