//! Mail over SMTP, as much as the notifier needs: one message to one recipient through a relay
//! (RFC 5321: `EHLO`, `MAIL FROM`, `RCPT TO`, `DATA` with dot-stuffing, `QUIT`), and the message
//! itself (RFC 5322 headers, RFC 2047 encoded words for text outside ASCII, a UTF-8 body in
//! base64, which passes any relay unchanged).
//!
//! Written here rather than taken from a mail crate: the notifier sends plain text to a local
//! relay, without TLS, and this is a few hundred lines against a dozen more crates to build.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::server::config::SmtpEntry;

/// Why a message did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt later: no connection, a timeout, a 4xx answer.
    Transient(String),
    /// The relay refused for good (a 5xx answer): trying again will not help.
    Permanent(String),
}

impl Failure {
    /// The failure in words.
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(m) | Failure::Permanent(m) => m,
        }
    }
}

/// One message for one recipient.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    /// The notification's id: the `Message-ID` is derived from it.
    pub id: &'a str,
    /// The notification's kind.
    pub kind: &'a str,
    /// The recipient's address (checked by [`crate::server::config::check_address`]).
    pub to: &'a str,
    /// The subject, any text.
    pub subject: &'a str,
    /// The body, any text.
    pub body: &'a str,
    /// Its language tag (`en`, `zh-CN`).
    pub language: &'a str,
    /// When it was written.
    pub date: DateTime<Utc>,
}

/// The `Message-ID` of notification `id` sent from `from`: `<ID@DOMAIN>`, the same for every copy
/// of one notification, so that a copy sent again after a crash is recognisable (mail stores
/// and clients merge copies by it). Characters a message id may not hold are written `=XX`.
pub fn message_id(id: &str, from: &str) -> String {
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let chars: Vec<char> = id.chars().collect();
    let mut left = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let dot_fits = c == '.' && i > 0 && i + 1 < chars.len() && !left.ends_with('.');
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') || dot_fits {
            left.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                left.push_str(&format!("={byte:02X}"));
            }
        }
    }
    if left.is_empty() {
        left.push_str("=00");
    }
    format!("<{left}@{domain}>")
}

/// `text` as a header value: as it is when it is printable ASCII, else RFC 2047 encoded words
/// (`=?UTF-8?B?...?=`) of at most 75 characters, folded onto continuation lines. Line breaks and
/// other control characters become spaces, so nothing can add a header.
pub fn header_text(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let plain = clean.chars().all(|c| c.is_ascii() && !c.is_control()) && !clean.contains("=?");
    if plain && clean.len() <= 900 { clean } else { encoded_words(&clean) }
}

/// A display name for `From:`: as it is when it is letters, digits and spaces, else encoded
/// words, which a phrase may hold (RFC 2047 5(3)) where `,` or `<` would break the address.
fn display_name(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if !clean.trim().is_empty() && clean.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
        clean
    } else {
        encoded_words(&clean)
    }
}

/// `clean` (no control characters) as RFC 2047 encoded words, folded.
fn encoded_words(clean: &str) -> String {
    // 45 bytes of UTF-8 make 60 of base64: with `=?UTF-8?B?` and `?=` a word of 72.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in clean.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words.iter().map(|w| format!("=?UTF-8?B?{}?=", STANDARD.encode(w))).collect::<Vec<_>>().join("\r\n ")
}

/// The whole message, lines ending CRLF: headers, a blank line, the body in base64.
pub fn compose(mail: &Mail<'_>, smtp: &SmtpEntry) -> String {
    let name = display_name(smtp.from_name.as_deref().unwrap_or("Cloverleaf"));
    let safe = |s: &str| s.chars().filter(|c| c.is_ascii_graphic()).collect::<String>();
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("Date", &mail.date.to_rfc2822());
    header("From", &format!("{name} <{}>", smtp.from));
    header("To", &format!("<{}>", mail.to));
    header("Subject", &header_text(mail.subject));
    header("Message-ID", &message_id(mail.id, &smtp.from));
    header("X-Cloverleaf-Id", &header_text(mail.id));
    header("X-Cloverleaf-Kind", &safe(mail.kind));
    // RFC 3834: an automatic message, which auto-responders leave unanswered.
    header("Auto-Submitted", "auto-generated");
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Language", &safe(mail.language));
    header("Content-Transfer-Encoding", "base64");
    out.push_str("\r\n");
    let body = mail.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let encoded = STANDARD.encode(body.as_bytes());
    for line in encoded.as_bytes().chunks(76) {
        // base64 is ASCII: every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// `message` as `DATA` sends it: every line ending CRLF, a line starting with `.` given a second
/// one (RFC 5321 4.5.2), and the closing `.` line.
pub fn dot_stuffed(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let text = message.strip_suffix("\r\n").unwrap_or(message);
    for line in text.split("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The longest reply line taken (RFC 5321 allows 512 octets).
const MAX_LINE: u64 = 2048;
/// The most lines of one reply taken.
const MAX_REPLY_LINES: usize = 64;

/// A reply: its code and its text, lines joined.
struct Reply {
    code: u16,
    text: String,
}

/// Sends `message` (from [`compose`]) to `to` through the relay of `smtp`, the whole exchange
/// within `timeout`.
pub async fn send(smtp: &SmtpEntry, timeout: Duration, to: &str, message: &str) -> Result<(), Failure> {
    let relay = format!("{}:{}", smtp.host, smtp.port);
    match tokio::time::timeout(timeout, session(smtp, to, message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Failure::Transient(why))) => Err(Failure::Transient(format!("smtp {relay}: {why}"))),
        Ok(Err(Failure::Permanent(why))) => Err(Failure::Permanent(format!("smtp {relay}: {why}"))),
        Err(_) => Err(Failure::Transient(format!("smtp {relay}: no answer within {} s", timeout.as_secs()))),
    }
}

async fn session(smtp: &SmtpEntry, to: &str, message: &str) -> Result<(), Failure> {
    let stream = TcpStream::connect((smtp.host.as_str(), smtp.port))
        .await
        .map_err(|e| Failure::Transient(format!("cannot connect: {e}")))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect("greeting", reply(&mut read).await?, 220)?;
    let hello = smtp.hello.as_deref().unwrap_or("localhost");
    command(&mut write, &format!("EHLO {hello}")).await?;
    let ehlo = reply(&mut read).await?;
    if (500..600).contains(&ehlo.code) {
        // A relay of the old school: plain HELO.
        command(&mut write, &format!("HELO {hello}")).await?;
        expect("HELO", reply(&mut read).await?, 250)?;
    } else {
        expect("EHLO", ehlo, 250)?;
    }
    command(&mut write, &format!("MAIL FROM:<{}>", smtp.from)).await?;
    expect("MAIL FROM", reply(&mut read).await?, 250)?;
    command(&mut write, &format!("RCPT TO:<{to}>")).await?;
    let rcpt = reply(&mut read).await?;
    if rcpt.code != 251 {
        expect("RCPT TO", rcpt, 250)?;
    }
    command(&mut write, "DATA").await?;
    expect("DATA", reply(&mut read).await?, 354)?;
    write.write_all(&dot_stuffed(message)).await.map_err(lost)?;
    write.flush().await.map_err(lost)?;
    expect("the message", reply(&mut read).await?, 250)?;
    // Accepted: from here on the message is the relay's. A failed goodbye changes nothing.
    if command(&mut write, "QUIT").await.is_ok() {
        let _ = reply(&mut read).await;
    }
    Ok(())
}

fn lost(e: std::io::Error) -> Failure {
    Failure::Transient(format!("connection lost: {e}"))
}

async fn command(write: &mut (impl AsyncWrite + Unpin), line: &str) -> Result<(), Failure> {
    write.write_all(format!("{line}\r\n").as_bytes()).await.map_err(lost)
}

/// `Ok` when `reply` has code `want`; a 5xx is permanent, anything else transient.
fn expect(step: &str, reply: Reply, want: u16) -> Result<(), Failure> {
    if reply.code == want {
        return Ok(());
    }
    let why = format!("{step} answered {} {}", reply.code, reply.text);
    if (500..600).contains(&reply.code) { Err(Failure::Permanent(why)) } else { Err(Failure::Transient(why)) }
}

/// Reads one reply, multi-line ones included (`250-...` lines, then `250 ...`).
async fn reply(read: &mut (impl AsyncBufRead + Unpin)) -> Result<Reply, Failure> {
    let mut text = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let mut line = Vec::new();
        let n = (&mut *read).take(MAX_LINE).read_until(b'\n', &mut line).await.map_err(lost)?;
        if n == 0 {
            return Err(Failure::Transient("the relay closed the connection".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(Failure::Transient(format!("a reply line longer than {MAX_LINE} bytes")));
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).and_then(|c| c.parse().ok());
        let Some(code) = code else {
            return Err(Failure::Transient(format!(
                "not an SMTP reply: {:?}",
                line.chars().take(80).collect::<String>()
            )));
        };
        text.push(line.get(4..).unwrap_or_default().to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code, text: text.join(" ") });
        }
    }
    Err(Failure::Transient(format!("a reply of more than {MAX_REPLY_LINES} lines")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_is_stable_and_well_formed_for_any_id() {
        assert_eq!(
            message_id("i-1.task.2.task_created.3", "cl@example.com"),
            "<i-1.task.2.task_created.3@example.com>"
        );
        assert_eq!(
            message_id("i-1.task.2.task_created.3", "cl@example.com"),
            message_id("i-1.task.2.task_created.3", "cl@example.com")
        );
        // Slashes, spaces, leading, trailing and doubled dots, `=` and non-ASCII are escaped, so
        // two ids never share a message id.
        assert_eq!(message_id("a/b c", "x@h.org"), "<a=2Fb=20c@h.org>");
        assert_eq!(message_id(".a..b.", "x@h.org"), "<=2Ea.=2Eb=2E@h.org>");
        assert_ne!(message_id("a=2F", "x@h.org"), message_id("a/", "x@h.org"));
        assert_eq!(message_id("单", "x@h.org"), "<=E5=8D=95@h.org>");
        assert_eq!(message_id("", "x@h.org"), "<=00@h.org>");
    }

    fn decode(value: &str) -> String {
        value
            .split("\r\n ")
            .map(|w| {
                let inner = w.strip_prefix("=?UTF-8?B?").and_then(|w| w.strip_suffix("?=")).unwrap();
                String::from_utf8(STANDARD.decode(inner).unwrap()).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_chinese_subject_is_encoded_in_words_of_at_most_75_characters() {
        let subject = "新任务：审批订单 SO-1（金额 ¥25,000.00），请在明天下班前处理完毕，谢谢！";
        let encoded = header_text(subject);
        assert!(encoded.is_ascii());
        assert!(encoded.split("\r\n ").all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?")), "{encoded}");
        assert!(encoded.split("\r\n ").count() > 1, "folded: {encoded}");
        assert_eq!(decode(&encoded), subject);
        assert_eq!(header_text("New task: Approve order SO-1"), "New task: Approve order SO-1");
    }

    #[test]
    fn no_header_can_be_smuggled_in_through_a_subject() {
        let encoded = header_text("Hi\r\nBcc: victim@example.com");
        assert!(!encoded.contains('\n') && !encoded.contains('\r'), "{encoded}");
        // Text that looks like an encoded word is encoded itself, so it is read as written.
        assert_eq!(decode(&header_text("=?UTF-8?B?SGk=?=")), "=?UTF-8?B?SGk=?=");
    }

    #[test]
    fn a_line_that_starts_with_a_dot_is_doubled_and_the_message_ends_with_a_dot_line() {
        assert_eq!(dot_stuffed("a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n".to_vec());
        assert_eq!(dot_stuffed("."), b"..\r\n.\r\n".to_vec());
    }

    #[test]
    fn the_message_carries_its_id_language_and_a_base64_utf8_body() {
        let smtp = SmtpEntry {
            host: "127.0.0.1".into(),
            port: 25,
            from: "cloverleaf@example.com".into(),
            from_name: Some("四叶草".into()),
            hello: None,
        };
        let date = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 5, 9, 0, 0).unwrap();
        let mail = Mail {
            id: "n.1",
            kind: "task_created",
            to: "mia@example.com",
            subject: "新任务",
            body: "您好：\n第二行",
            language: "zh-CN",
            date,
        };
        let text = compose(&mail, &smtp);
        assert!(text.is_ascii());
        assert!(text.contains("\r\nMessage-ID: <n.1@example.com>\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Language: zh-CN\r\n"), "{text}");
        assert!(text.starts_with("Date: Mon, 5 Jan 2026 09:00:00 +0000\r\n"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("From: =?UTF-8?B?"), "{head}");
        let body = STANDARD.decode(body.replace("\r\n", "")).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), "您好：\r\n第二行");
        let plain = SmtpEntry { from_name: Some("Cloverleaf".into()), ..smtp.clone() };
        assert!(compose(&mail, &plain).contains("\r\nFrom: Cloverleaf <cloverleaf@example.com>\r\n"));
        let comma = SmtpEntry { from_name: Some("Finance, Inc. <x>".into()), ..smtp };
        let text = compose(&mail, &comma);
        assert!(text.contains("\r\nFrom: =?UTF-8?B?"), "specials are encoded, never bare: {text}");
    }
}
