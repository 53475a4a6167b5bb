//! The app's own security, by hand-written HTTP requests (no browser needed): the token, the
//! cookie, the Host allowlist, the Origin check, the headers every answer carries, and nothing
//! served that points elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use backchannel_client::{Engine, EngineConfig, Passphrase};
use backchannel_web::{Options, Ui};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Answer {
    status: u16,
    head: String,
    body: String,
}

async fn http(ui: &Ui, request: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(ui.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

fn get(host: &str, path: &str, cookie: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
}

fn post(host: &str, path: &str, cookie: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn app() -> (tempfile::TempDir, Ui) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("alice");
    let pass = Passphrase::new("correct horse".into());
    drop(Engine::init(&home, &pass, "Alice", "Delegation A", EngineConfig::default()).unwrap());
    let mut options = Options::new(home);
    options.passphrase = Some(pass);
    let ui =
        backchannel_web::start(backchannel_web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap(), options)
            .await
            .unwrap();
    (tmp, ui)
}

#[tokio::test]
async fn only_the_token_holder_on_the_apps_own_host_and_origin_gets_in() {
    let (_tmp, ui) = app().await;
    let host = ui.addr().to_string();
    let token = ui.url_with_token().rsplit_once("token=").unwrap().1.to_owned();

    let none = http(&ui, &get(&host, "/contacts", "")).await;
    assert_eq!(none.status, 401, "no token");
    assert!(none.head.contains("content-security-policy: default-src 'none'"), "{}", none.head);
    assert_eq!(http(&ui, &get(&host, &format!("/?token={}", "0".repeat(64)), "")).await.status, 401);

    let exchanged = http(&ui, &get(&host, &format!("/?token={token}"), "")).await;
    assert_eq!(exchanged.status, 303);
    let cookie = exchanged.head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap();
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let page = http(&ui, &get(&host, "/contacts", &cookie)).await;
    assert_eq!(page.status, 200);
    for header in [
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
        "cache-control: no-store",
        "x-content-type-options: nosniff",
    ] {
        assert!(page.head.contains(header), "{header}: {}", page.head);
    }
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "no address of elsewhere");
    assert!(!page.body.contains(&token), "the token is not in the page");

    // DNS rebinding: another name for 127.0.0.1 is refused, even with the cookie.
    let port = ui.addr().port();
    assert_eq!(http(&ui, &get(&format!("evil.example:{port}"), "/contacts", &cookie)).await.status, 403);
    assert_eq!(http(&ui, &get(&format!("localhost:{port}"), "/contacts", &cookie)).await.status, 200);

    let create = "name=fromelsewhere&mode=direct";
    let origin = format!("Origin: http://{host}\r\n");
    for extra in ["Origin: http://evil.example\r\n", "Origin: null\r\nSec-Fetch-Site: cross-site\r\n", ""] {
        let refused = http(&ui, &post(&host, "/channels", &cookie, extra, create)).await;
        assert_eq!(refused.status, 403, "{extra:?}");
    }
    let channels = http(&ui, &get(&host, "/channels", &cookie)).await;
    assert!(!channels.body.contains("fromelsewhere"), "nothing was created");
    let made = http(&ui, &post(&host, "/channels", &cookie, &origin, "name=ours&mode=direct")).await;
    assert_eq!(made.status, 303, "the app's own origin is let through");
    let same = "Origin: null\r\nSec-Fetch-Site: same-origin\r\n";
    let made = http(&ui, &post(&host, "/channels", &cookie, same, "name=ours2&mode=direct")).await;
    assert_eq!(made.status, 303, "a same-origin post under no-referrer");
    ui.stop().await;
}

#[tokio::test]
async fn a_peers_text_is_escaped_and_assets_are_our_own() {
    let (_tmp, ui) = app().await;
    let host = ui.addr().to_string();
    let token = ui.url_with_token().rsplit_once("token=").unwrap().1.to_owned();
    let cookie = format!("backchannel_ui_{}={token}", ui.addr().port());
    let origin = format!("Origin: http://{host}\r\n");
    let name = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%E2%80%AE";
    let made =
        http(&ui, &post(&host, "/channels", &cookie, &origin, &format!("name={name}&mode=direct"))).await;
    let page = http(&ui, &get(&host, "/channels", &cookie)).await;
    assert!(!page.body.contains("<script>alert"), "{} {}", made.status, page.body);
    let css = http(&ui, &get(&host, "/assets/app.css", "")).await;
    assert_eq!(css.status, 200, "the stylesheet is public");
    assert!(!css.body.contains("url(http"), "no font or image from elsewhere");
    let js = http(&ui, &get(&host, "/assets/app.js", "")).await;
    assert!(!js.body.contains("http://") && !js.body.contains("https://"));
    ui.stop().await;
}
