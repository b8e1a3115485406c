//! The configuration checks: users, tokens, passwords, webhooks and email routes.

use super::*;

#[test]
fn a_plain_token_in_place_of_a_hash_is_refused() {
    let config = ConfigFile {
        users: vec![UserEntry {
            name: "mia".into(),
            roles: vec![],
            token_sha256: "secret".into(),
            password_argon2: None,
            time_zone: None,
            email: None,
            language: None,
        }],
        ..ConfigFile::default()
    };
    let err = Users::from_config(&config).unwrap_err().to_string();
    assert!(err.contains("64 hex digits"), "{err}");
}

#[test]
fn a_token_authenticates_its_user_only() {
    let config = ConfigFile {
        users: vec![UserEntry {
            name: "mia".into(),
            roles: vec!["sales.manager".into()],
            token_sha256: hash_token("t-1"),
            password_argon2: None,
            time_zone: None,
            email: None,
            language: None,
        }],
        ..ConfigFile::default()
    };
    let users = Users::from_config(&config).unwrap();
    assert_eq!(users.authenticate("t-1").unwrap().name, "mia");
    assert!(users.authenticate("t-2").is_none());
}

/// A user `name` with a token of its own and `password_argon2`.
fn entry(name: &str, password_argon2: Option<&str>) -> UserEntry {
    UserEntry {
        name: name.into(),
        roles: vec![],
        token_sha256: hash_token(&format!("token-{name}")),
        password_argon2: password_argon2.map(str::to_string),
        time_zone: None,
        email: None,
        language: None,
    }
}

/// Why a configuration with `phc` as mia's password is refused.
fn refusal(phc: &str) -> String {
    let config = ConfigFile { users: vec![entry("mia", Some(phc))], ..ConfigFile::default() };
    format!("{:#}", Users::from_config(&config).unwrap_err())
}

#[test]
fn a_plain_password_in_place_of_a_hash_is_refused() {
    let err = refusal("hunter2");
    assert!(err.contains("user `mia`") && err.contains("never a plain password"), "{err}");
    assert!(err.contains("run `cloverleaf hash-password`"), "the way out is named: {err}");
    assert!(!err.contains("hunter2"), "the password is not repeated: {err}");
}

#[test]
fn a_hash_other_than_argon2id_is_refused() {
    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    for algorithm in [argon2::Algorithm::Argon2i, argon2::Algorithm::Argon2d] {
        let params = Params::new(8, 1, 1, None).unwrap();
        let hasher = Argon2::new(algorithm, argon2::Version::V0x13, params);
        let phc = hasher.hash_password(b"hunter2", &salt).unwrap().to_string();
        let err = refusal(&phc);
        assert!(err.contains(&format!("is a `{algorithm}` hash; only argon2id")), "{err}");
        assert!(err.contains("cloverleaf hash-password"), "{err}");
    }
    // bcrypt's and sha-crypt's own formats are not PHC strings at all.
    for phc in ["$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "$5$rounds=5000$salt$hash"] {
        let err = refusal(phc);
        assert!(err.contains("user `mia`: password_argon2"), "{err}");
    }
}

#[test]
fn a_malformed_argon2id_string_is_refused() {
    let cases = [
        ("$argon2id$v=19$m=19456,t=2,p=1", "lacks its salt or its hash"),
        ("$argon2id$v=19$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNhbHQ", "lacks its salt or its hash"),
        ("$argon2id$v=16$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "version 19"),
        ("$argon2id$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "`v=19`"),
        ("$argon2id$v=19$m=1,t=2,p=1$c2l4dGVlbiBieXRlIHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "parameters argon2 refuses"),
        ("$argon2id$v=19$m=19456,t=2,p=1,x=3$c2l4dGVlbiBieXRlIHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "parameters"),
        ("$argon2id$v=19$m=2000000,t=2,p=1$c2l4dGVlbiBieXRlIHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "1 GiB"),
        ("$argon2id$v=19$m=19456,t=2,p=1$salt with spaces$hash", "not a well-formed PHC string"),
        ("$argon2id", "lacks its salt or its hash"),
        ("$argon2id$v=19$m=19456,t=2,p=1$$aGFzaGhhc2hoYXNoaGFzaA", "not a well-formed PHC string"),
    ];
    for (phc, why) in cases {
        let err = refusal(phc);
        assert!(err.contains("user `mia`: password_argon2") && err.contains(why), "{phc}: {err}");
        assert!(err.contains("cloverleaf hash-password"), "{err}");
    }
}

#[test]
fn a_password_signs_in_its_user_only() {
    let phc = hash_password("correct horse").unwrap();
    let config = ConfigFile {
        users: vec![entry("mia", Some(&format!("  {phc}\n"))), entry("sam", None)],
        ..ConfigFile::default()
    };
    let users = Users::from_config(&config).unwrap();
    assert_eq!(users.verify_password("mia", "correct horse").unwrap().name, "mia");
    assert_eq!(users.verify_password(" Mia ", "correct horse").unwrap().name, "mia", "one spelling of a name");
    assert!(users.verify_password("mia", "correct horse ").is_none());
    assert!(users.verify_password("mia", "").is_none());
    assert!(users.verify_password("sam", "correct horse").is_none(), "sam has no password");
    assert!(users.verify_password("nobody", "correct horse").is_none());
    assert!(users.verify_password("not a name!", "correct horse").is_none());
    // The token still signs mia in, and a password is no token.
    assert_eq!(users.authenticate("token-mia").unwrap().name, "mia");
    assert!(users.authenticate("correct horse").is_none());
}

#[test]
fn the_dummy_hash_costs_what_a_real_one_does() {
    assert_eq!(check_argon2id(DUMMY_ARGON2), Ok(()));
    let real = hash_password("anything").unwrap();
    let params = |phc: &str| Params::try_from(&PasswordHash::new(phc).unwrap()).unwrap();
    assert_eq!(params(DUMMY_ARGON2), params(&real));
    let cost = params(&real);
    assert_eq!(
        (cost.m_cost(), cost.t_cost(), cost.p_cost(), cost.output_len()),
        (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST, Some(Params::DEFAULT_OUTPUT_LEN))
    );
}

#[test]
fn a_password_hashes_to_a_fresh_argon2id_string_each_time() {
    let (a, b) = (hash_password("correct horse").unwrap(), hash_password("correct horse").unwrap());
    assert_ne!(a, b, "a fresh salt each time");
    assert!(a.starts_with("$argon2id$v=19$"), "{a}");
    assert_eq!(check_argon2id(&a), Ok(()));
}

/// Why `toml` (an `[smtp]` and `[[email]]` section) is refused, or `None` when accepted.
fn email_refusal(toml: &str) -> Option<String> {
    let config: ConfigFile = toml::from_str(toml).unwrap();
    email_config(&config).err().map(|e| format!("{e:#}"))
}

#[test]
fn the_email_channel_is_checked_with_what_to_write_instead() {
    let relay = "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"cloverleaf@example.com\"\n";
    let route = "[[email]]\nkinds = [\"task_created\", \"dunning_letter\"]\n";
    assert_eq!(email_refusal(&format!("{relay}{route}")), None);
    let config: ConfigFile = toml::from_str(&format!("{relay}{route}")).unwrap();
    let email = email_config(&config).unwrap().unwrap();
    assert_eq!((email.smtp.port, email.routes[0].carries("dunning_letter")), (25, true));
    assert!(!email.routes[0].carries("task_overdue"));
    assert_eq!(email_config(&ConfigFile::default()).unwrap().map(|e| e.routes.len()), None, "no mail at all");
    let cases = [
        (route.to_string(), "need an [smtp] relay"),
        (relay.to_string(), "no [[email]] route"),
        (format!("{relay}[[email]]\nkinds = [\"task_made\"]\n"), "`task_made`, which is not a kind"),
        (
            format!("{relay}[[email]]\nto = [\"ar at example.com\"]\n"),
            "`to` `ar at example.com` is not a plain mail address",
        ),
        (format!("{relay}[[email]]\nto = [\"<x@y.com>\\r\\nBcc: z@y.com\"]\n"), "not a plain mail address"),
        (format!("[smtp]\nhost = \"h\"\nfrom = \"nobody\"\n{route}"), "from `nobody` is not a plain mail address"),
        (format!("[smtp]\nhost = \"a b\"\nfrom = \"x@y.com\"\n{route}"), "host `a b` is not a host name"),
        (format!("[smtp]\nhost = \"h\"\nport = 0\nfrom = \"x@y.com\"\n{route}"), "port 0"),
        (format!("[smtp]\nhost = \"h\"\nfrom = \"x@y.com\"\nhello = \"my host\"\n{route}"), "hello `my host`"),
    ];
    for (toml, why) in cases {
        let err = email_refusal(&toml).unwrap_or_else(|| panic!("accepted: {toml}"));
        assert!(err.contains(why), "{toml}: {err}");
    }
    // A TLS setting is refused by name rather than ignored: the relay does TLS onward.
    assert!(toml::from_str::<ConfigFile>(&format!("{relay}starttls = true\n{route}")).is_err());
}

#[test]
fn a_users_address_and_language_are_checked() {
    let with = |email: Option<&str>, language: Option<&str>| {
        let mut user = entry("mia", None);
        user.email = email.map(str::to_string);
        user.language = language.map(str::to_string);
        Users::from_config(&ConfigFile { users: vec![user], ..ConfigFile::default() }).map_err(|e| format!("{e:#}"))
    };
    let users = with(Some(" mia@example.com "), Some("zh-CN")).unwrap();
    let mia = users.get("mia").unwrap();
    assert_eq!((mia.email.as_deref(), mia.language), (Some("mia@example.com"), Lang::ZhCn));
    assert_eq!(with(None, None).unwrap().get("mia").unwrap().language, Lang::En);
    let err = with(Some("mia"), None).unwrap_err();
    assert!(err.contains("user `mia`: email `mia` is not a plain mail address"), "{err}");
    let err = with(None, Some("fr")).unwrap_err();
    assert!(err.contains("language `fr` is not one of en, zh-CN"), "{err}");
}

#[test]
fn tokens_are_fresh_and_long() {
    let (a, b) = (new_token().unwrap(), new_token().unwrap());
    assert_ne!(a, b);
    assert_eq!(a.len(), 4 + 64);
}
