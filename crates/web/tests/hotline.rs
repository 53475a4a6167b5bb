//! The crisis hotline's pages by hand-written HTTP requests (no browser needed): several host
//! fields on the invitation, a hotline channel's intervals checked and shown, and the engine's
//! refusal to leave the last host shown beside the form that asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use backchannel_client::{Engine, EngineConfig, Passphrase};
use backchannel_relay::RelayOptions;
use backchannel_web::{Options, Ui};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// The app, unlocked, and what a request needs to get in.
struct Session {
    _tmp: tempfile::TempDir,
    ui: Ui,
    host: String,
    cookie: String,
}

impl Session {
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("alice");
        let pass = Passphrase::new("correct horse".into());
        drop(Engine::init(&home, &pass, "Alice", "Delegation A", EngineConfig::default()).unwrap());
        let mut options = Options::new(home);
        options.passphrase = Some(pass);
        let listener = backchannel_web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let ui = backchannel_web::start(listener, options).await.unwrap();
        let host = ui.addr().to_string();
        let token = ui.url_with_token().rsplit_once("token=").unwrap().1.to_owned();
        let cookie = format!("backchannel_ui_{}={token}", ui.addr().port());
        Self { _tmp: tmp, ui, host, cookie }
    }

    async fn send(&self, request: String) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(self.ui.addr()).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Answer { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
    }

    async fn get(&self, path: &str) -> Answer {
        let (host, cookie) = (&self.host, &self.cookie);
        self.send(format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ))
        .await
    }

    async fn post(&self, path: &str, body: &str) -> Answer {
        let (host, cookie) = (&self.host, &self.cookie);
        self.send(format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nOrigin: http://{host}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }
}

/// Form and path encoding: everything but unreserved characters percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_invitation_takes_several_hosts_and_a_hotline_its_intervals() {
    let s = Session::start().await;

    // "Add another host" draws the form again with what was typed, and one more field, focused.
    let more = s.post("/contacts/invite", "relay=bcr%3A%2F%2Fh1%3A1%23x&expires=3600&more=1").await;
    assert_eq!(more.status, 200);
    assert!(more.body.contains(r#"id="invite-relay-2""#), "{}", more.body);
    assert!(more.body.contains(r#"value="bcr://h1:1#x""#), "the first host is kept");
    assert!(more.body.contains("autofocus"), "the new field takes the focus");
    assert!(more.body.contains(r#"<option value="3600" selected>"#), "the validity is kept");
    // A host that is not an address is named in the error, beside the form.
    let bad = s.post("/contacts/invite", "relay=nonsense&relay=&expires=3600").await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains(r#"id="problem-invite""#) && bad.body.contains("“nonsense” is not a relay address")
    );
    let none = s.post("/contacts/invite", "relay=&expires=3600").await;
    assert!(none.status == 422 && none.body.contains("at least one relay"), "{}", none.body);

    // A hotline's intervals: whole numbers, then the engine's own bounds.
    let zero = s.post("/channels", "name=crisis&mode=direct&hotline=1&heartbeat=0&path_test=60").await;
    assert_eq!(zero.status, 422);
    assert!(zero.body.contains("whole numbers above 0"), "{}", zero.body);
    assert!(zero.body.contains(r#"value="0""#), "what was typed stays");
    let slow = s.post("/channels", "name=crisis&mode=direct&hotline=1&heartbeat=3601&path_test=60").await;
    assert!(slow.status >= 400 && slow.body.contains("heartbeat is 1 second to 1 hour"), "{}", slow.body);
    let made = s.post("/channels", "name=crisis&mode=direct&hotline=1&heartbeat=5&path_test=2").await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert!(made.head.contains("location: /channels/crisis/members"));
    let members = s.get("/channels/crisis/members").await;
    assert!(members.body.contains("a heartbeat every 5 seconds"), "{}", members.body);
    assert!(members.body.contains("tested end to end every 2 minutes"), "{}", members.body);
    let talk = s.get("/talk/crisis").await;
    assert!(talk.body.contains(r#"id="line""#) && talk.body.contains("Hotline"), "{}", talk.body);
    let list = s.get("/channels").await;
    assert!(list.body.contains(r#"class="badge hot""#), "the list marks it");

    // Without the box ticked, a channel is no hotline (the intervals are not read).
    let plain = s.post("/channels", "name=calm&mode=direct&heartbeat=0&path_test=0").await;
    assert_eq!(plain.status, 303);
    assert!(!s.get("/talk/calm").await.body.contains(r#"id="line""#));
    s.ui.stop().await;
}

#[tokio::test]
async fn the_last_host_cannot_be_left_and_the_page_says_so_where_it_was_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse().unwrap(), tmp.path().join("relay")))
            .await
            .unwrap();
    let address = relay.address().to_string();
    let bao = Engine::init(
        &tmp.path().join("bao"),
        &Passphrase::new("bao's passphrase".into()),
        "Bao",
        "Delegation B",
        EngineConfig::default(),
    )
    .unwrap();
    let invitation = bao.invite(&[relay.address().clone()], 3600).await.unwrap();
    let s = Session::start().await;

    let accepted = s.post("/contacts/accept", &format!("text={}", enc(&invitation))).await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let routes = "/contacts/Bao%40Delegation%20B/routes";
    let page = s.get(routes).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("<tr data-host=").count(), 1, "{}", page.body);
    assert!(page.body.contains("Leave this host"), "{}", page.body);
    assert!(s.get("/contacts/Bao%40Delegation%20B").await.body.contains("1 host"));

    // Leaving asks first; the engine refuses the last host, and says so in that box.
    let confirm = s.get(&format!("{routes}?drop={}", enc(&address))).await;
    assert!(confirm.body.contains(r#"id="drop""#) && confirm.body.contains("Keep it"), "{}", confirm.body);
    let refused = s.post(&format!("{routes}/drop"), &format!("relay={}", enc(&address))).await;
    assert!(refused.status >= 400, "{}", refused.status);
    assert!(refused.body.contains(r#"id="problem-drop""#), "{}", refused.body);
    assert!(refused.body.contains("is the only host between you and Bao"), "{}", refused.body);
    assert_eq!(s.get(routes).await.body.matches("<tr data-host=").count(), 1, "nothing was left");
    // The next invitation starts from the hosts our mailboxes are on.
    let contacts = s.get("/contacts").await;
    assert!(contacts.body.contains(&format!(r#"value="{address}""#)), "{}", contacts.body);
    let garbage = s.post(&format!("{routes}/drop"), "relay=nonsense").await;
    assert!(garbage.status == 422 && garbage.body.contains("not a host address"));

    s.ui.stop().await;
    drop(bao);
    relay.shutdown().await;
}
