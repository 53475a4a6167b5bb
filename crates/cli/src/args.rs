//! Command-line syntax. Parsed here, validated into typed values in `config`, run in
//! `commands`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "backchannel",
    version,
    about = "Confidential, deniable negotiation through neutral relays."
)]
#[command(long_about = "Confidential, deniable negotiation through neutral relays.\n\n\
Each party keeps its keys in an encrypted store in BACKCHANNEL_HOME (default: your data \
directory), unlocked with a passphrase from BACKCHANNEL_PASSPHRASE or asked on the terminal.\n\n\
Start with `backchannel demo` to see a whole exchange on this machine.")]
pub struct Cli {
    /// Directory of this party's encrypted store.
    #[arg(long, global = true, env = "BACKCHANNEL_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). Logs never hold secrets.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a relay (a neutral host) that stores and forwards sealed blocks.
    Relay(Box<RelayArgs>),
    /// Create this party: keys and an encrypted store.
    Init {
        /// Your name as contacts will see it.
        #[arg(long)]
        name: String,
        /// The delegation you speak for, e.g. "Delegation A".
        #[arg(long)]
        side: String,
    },
    /// Show your name, side and key fingerprint.
    Whoami {
        /// Also print the public keys, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time invitation for someone to become your contact.
    Invite {
        /// A relay's address, as it printed it (bcr://HOST:PORT#FINGERPRINT). Give it again
        /// for more hosts (up to 8): the contact is then reached over all of them at once.
        #[arg(long, value_name = "ADDRESS", required = true)]
        relay: Vec<String>,
        /// How long the invitation stays valid: e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        expires: String,
    },
    /// Accept an invitation text (or `-` to read it from standard input).
    Accept {
        #[arg(value_name = "TEXT")]
        text: String,
        /// The hosts of your inboxes for this contact (default: the invitation's hosts).
        #[arg(long, value_name = "ADDRESS")]
        relay: Vec<String>,
    },
    /// One contact's routes (the hosts between you): list them, add a host, leave one.
    Contact {
        name: String,
        #[command(subcommand)]
        cmd: ContactCmd,
    },
    /// List your contacts and their safety numbers.
    Contacts {
        #[arg(long)]
        json: bool,
    },
    /// Mark a contact verified once you compared safety numbers out of band.
    Verify { name: String },
    /// Send a note (informal and deniable: never signed) to a contact or a channel.
    Send {
        /// Contact name (or NAME@SIDE), or channel name.
        name: String,
        /// In a shuttle channel you run: the member(s) who receive it (NAME or NAME@SIDE).
        #[arg(long, value_delimiter = ',', value_name = "MEMBER")]
        to: Vec<String>,
        /// The note's text.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// Read the note from a file instead.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Deliver the outbox, then fetch and decrypt everything waiting.
    Sync,
    /// Show the conversation with a contact or in a channel (entries numbered).
    Read {
        /// Contact or channel name.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stay connected and print notes as they arrive (Ctrl-C to stop).
    Watch {
        /// Only this contact or channel.
        name: Option<String>,
    },
    /// Create channels, add and remove members, list them.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// As the intermediary of a shuttle channel: pass a side's note on, marked as relayed by you.
    Forward {
        channel: String,
        /// The note's number in `backchannel read CHANNEL`.
        entry: usize,
        /// Who receives it (NAME or NAME@SIDE), comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "MEMBER")]
        to: Vec<String>,
        /// Your rewording (it is shown as rephrased).
        #[arg(long, value_name = "TEXT")]
        rephrase: Option<String>,
    },
    /// Move a channel to its next phase: exploratory → drafting → agreed → public.
    #[command(subcommand)]
    Phase(PhaseCmd),
    /// Non-papers: versioned, unattributed drafts.
    #[command(subcommand)]
    Nonpaper(NonpaperCmd),
    /// Put a text to ratification by the named sides (fixed by its hash).
    Propose {
        channel: String,
        file: PathBuf,
        /// The sides that must ratify, comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "SIDE")]
        signatories: Vec<String>,
        /// Title (default: the file name).
        #[arg(long)]
        title: Option<String>,
    },
    /// Sign a proposal with your seal (the only thing Backchannel ever signs).
    Ratify {
        channel: String,
        /// Its number, id prefix or title, as `agreement status` lists.
        proposal: String,
    },
    /// Proposals and agreements: status, export, verification.
    #[command(subcommand)]
    Agreement(AgreementCmd),
    /// Private red-line probes: learn whether two sides' positions overlap, and nothing more.
    #[command(subcommand)]
    Probe(ProbeCmd),
    /// What waits in the outbox, and what a relay refused (drop or retry it).
    Outbox {
        #[command(subcommand)]
        cmd: Option<OutboxCmd>,
    },
    /// The relays you connect to: allow one an introduction names.
    #[command(subcommand)]
    Relays(RelaysCmd),
    /// Run a whole negotiation on this machine: a relay, two sides and an intermediary.
    Demo,
    /// Open the local web app: prints its address (with its token) and serves this
    /// computer only, until Ctrl-C. Meanwhile CLI commands on the same home go through it.
    Ui {
        /// Loopback address and port to serve on (127.0.0.1 or [::1] only).
        #[arg(long, default_value = "127.0.0.1:4680")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxCmd {
    /// List what waits (the default).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Give up an item (by its number in the list): it will not be sent.
    Drop { n: i64 },
    /// Send the items a relay refused again.
    Retry,
}

#[derive(Subcommand, Debug)]
pub enum RelaysCmd {
    /// Allow connecting to a relay you do not use yet (an introduction names it).
    Allow {
        #[arg(value_name = "ADDRESS")]
        relay: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ChannelCmd {
    /// Create a channel; you are its creator and first member.
    Create {
        name: String,
        /// `direct` (everyone reads everyone) or `shuttle` (a star around you, the intermediary).
        #[arg(long, default_value = "direct")]
        mode: String,
        /// Your role: principal, intermediary or observer (default: principal; intermediary in a shuttle).
        #[arg(long)]
        role: Option<String>,
        /// How long notes are kept in the exploratory phase (e.g. 7d, 12h).
        #[arg(long, value_name = "DURATION")]
        retention: Option<String>,
        /// A hotline: flash priority, receipts awaited and notes sent again until confirmed,
        /// heartbeats on every route, path tests; route states shown to every member.
        #[arg(long)]
        hotline: bool,
        /// A hotline's heartbeat interval (default 10s; a route is down after 3 missed).
        #[arg(long, value_name = "DURATION", requires = "hotline")]
        heartbeat: Option<String>,
        /// How often a hotline tests every route end to end (default 1h).
        #[arg(long, value_name = "DURATION", requires = "hotline")]
        path_test: Option<String>,
    },
    /// Add a contact to a channel you created.
    Add {
        name: String,
        contact: String,
        #[arg(long, default_value = "principal")]
        role: String,
    },
    /// Remove a member from a channel you created.
    Remove { name: String, member: String },
    /// Members, roles, safety numbers and phase.
    Members {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Your channels.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PhaseCmd {
    /// Propose the next phase (your side consents by proposing).
    Propose { channel: String, phase: String },
    /// Consent to the phase change proposed in a channel.
    Consent { channel: String },
}

#[derive(Subcommand, Debug)]
pub enum NonpaperCmd {
    /// Put a draft (a new version if the title exists).
    Put {
        channel: String,
        #[arg(long)]
        title: String,
        file: PathBuf,
    },
    /// List drafts and versions.
    List { channel: String },
    /// Print a version (the latest by default).
    Show {
        channel: String,
        title: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Line diff between two versions.
    Diff { channel: String, title: String, v1: u32, v2: u32 },
}

#[derive(Subcommand, Debug)]
pub enum AgreementCmd {
    /// Proposals in a channel (or all channels) and who ratified them.
    Status { channel: Option<String> },
    /// Write an agreement to a folder: text, allowed_signers, one .sig per signatory, manifest.
    Export { channel: String, proposal: String, dir: PathBuf },
    /// Check an exported folder: every required side signed this exact text.
    Verify {
        dir: PathBuf,
        /// Also check each seal against your contacts' (needs your store and passphrase).
        #[arg(long)]
        contacts: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContactCmd {
    /// List the routes: yours (in) and theirs (out), each with its state.
    Relays {
        #[arg(long)]
        json: bool,
    },
    /// Add a host: a fresh inbox of yours there, announced to the contact over your session
    /// (it is asked to add one there too). No new invitation needed.
    AddRelay {
        #[arg(value_name = "ADDRESS")]
        relay: String,
    },
    /// Leave a host: your inbox there is deleted once the contact confirms, and the contact
    /// is asked to leave it too. Works while that host is down.
    DropRelay {
        #[arg(value_name = "ADDRESS")]
        relay: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProbeCmd {
    /// Put a probe's terms to another member of a channel; they accept or decline.
    #[command(after_help = "Single value (is there a zone of agreement?):\n  \
        backchannel probe propose talks --with Bao --issue \"months until withdrawal\" --max 120 --gives me --takes them\n\
        Packages (which combinations are acceptable to both?):\n  \
        backchannel probe propose talks --with Bao --issue \"monitor=UN,OSCE,joint\" --issue \"months=12,18,24\" --cap 3\n\n\
        Then each side enters its private input with `backchannel probe input`.")]
    Propose {
        channel: String,
        /// The member to probe with (NAME or NAME@SIDE); they must be of another side.
        #[arg(long, value_name = "MEMBER")]
        with: String,
        /// Single value: the issue's name. Packages: `NAME=OPTION,OPTION,...`, once per issue.
        #[arg(long, required = true, value_name = "ISSUE")]
        issue: Vec<String>,
        /// Single value: the agreed range is 0..=MAX (at most 4294967296).
        #[arg(long, conflicts_with = "cap", required_unless_present = "cap")]
        max: Option<u64>,
        /// Single value: the side whose number is the most it can give (me, them or a side).
        #[arg(long, required_unless_present = "cap", conflicts_with = "cap", value_name = "SIDE")]
        gives: Option<String>,
        /// Single value: the side whose number is the least it can take (me, them or a side).
        #[arg(long, required_unless_present = "cap", conflicts_with = "cap", value_name = "SIDE")]
        takes: Option<String>,
        /// Packages: how many packages each side may list (fewer than the option space holds).
        #[arg(long, value_name = "N")]
        cap: Option<u32>,
        /// Who asks: starts the probe, learns the result first and discloses it (me, them, either).
        #[arg(long, default_value = "me", value_name = "WHO")]
        asker: String,
        /// The channel's probe budget, PER_ISSUE/PER_PHASE (default 3/10); the first accepted
        /// probe fixes it for the channel.
        #[arg(long, value_name = "N/M")]
        budget: Option<String>,
    },
    /// Accept a probe's terms (ID: 4 or more hex digits, as `probe log` shows).
    Accept { channel: String, id: String },
    /// Decline a probe (or withdraw yours) before it runs.
    Decline { channel: String, id: String },
    /// Enter your private input: kept in your encrypted store, never sent, never shown.
    Input {
        channel: String,
        id: String,
        /// Single value: your number (`-` reads it from standard input, out of shell history).
        #[arg(required_unless_present = "package", conflicts_with = "package")]
        value: Option<String>,
        /// Packages: each as its options in the issues' order, `OPT,OPT;OPT,OPT` (or repeat).
        #[arg(long, value_name = "PACKAGES")]
        package: Vec<String>,
    },
    /// The channel's probe policy, budget and open probes.
    Status {
        channel: String,
        #[arg(long)]
        json: bool,
    },
    /// Every probe you took part in, and its result (the other side's log shows the same).
    Log {
        channel: String,
        #[arg(long)]
        json: bool,
    },
}

/// Every flag can also be a key of the same name in `--config FILE` (TOML); a flag given on
/// the command line wins over the file. Defaults are in each flag's help.
#[derive(clap::Args, Debug, Default)]
pub struct RelayArgs {
    /// Read settings from this TOML file (keys are the flag names: `listen = "0.0.0.0:4443"`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the relay's certificate, address file and embedded store.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// `sqlite` (embedded, in DIR) or a PostgreSQL URL (postgres://…), shared by every node
    /// of a host [default: sqlite].
    #[arg(long, env = "BACKCHANNEL_RELAY_STORE")]
    pub store: Option<String>,
    /// Host name or IP that clients use to reach this relay (default: the listen IP).
    #[arg(long)]
    pub public_host: Option<String>,
    /// Every node of this host as clients reach them, `HOST:PORT,HOST:PORT`: the relay
    /// address lists them all, and clients fail over between them (default: this node).
    #[arg(long, value_name = "LIST")]
    pub nodes: Option<String>,
    /// TLS certificate and key (DER), shared by every node of a host [default: cert.der and
    /// key.der in DIR, made on first start].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The certificate to rotate to, and its key (made if both are missing): its fingerprint
    /// joins the relay address, so addresses given out now keep working after the rotation.
    #[arg(long, value_name = "FILE", requires = "tls_next_key")]
    pub tls_next_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_next_cert")]
    pub tls_next_key: Option<PathBuf>,
    /// Size of every stored block in bytes; every node of a host must use the same
    /// [default: 4096].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// How long an unacknowledged block is kept: e.g. 14d [default: 14d].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Embedded store only: the most megabytes it may hold; past it, sends are refused as on
    /// a full disk until recipients fetch and acknowledge.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_store_mb: Option<u64>,
    /// Queues the whole relay creates per second, whatever the number of connections asking
    /// (bursts of ten times as many); past it, creations get `429` [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_rate: Option<u32>,
    /// Most connections (and so WebSockets) served at once; each needs a file descriptor
    /// [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: Option<u32>,
    /// Serve `/metrics` (plain HTTP) on this address, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve `/metrics` on the public port, to `Authorization: Bearer TOKEN` with the
    /// token read from this file (at least 16 characters) [default: off].
    #[arg(long, value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// `text` or `json` (one object per line) [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log each client's IP address when it connects (not logged otherwise).
    #[arg(long)]
    pub log_client_ips: bool,
}
