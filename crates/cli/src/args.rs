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
    Relay(RelayArgs),
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
        /// The relay's address, as it printed it (bcr://HOST:PORT#FINGERPRINT).
        #[arg(long, value_name = "ADDRESS")]
        relay: String,
        /// How long the invitation stays valid: e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        expires: String,
    },
    /// Accept an invitation text (or `-` to read it from standard input).
    Accept {
        #[arg(value_name = "TEXT")]
        text: String,
    },
    /// List your contacts and their safety numbers.
    Contacts {
        #[arg(long)]
        json: bool,
    },
    /// Mark a contact verified once you compared safety numbers out of band.
    Verify { name: String },
    /// Send a note (informal and deniable: never signed).
    Send {
        /// Contact name (or NAME@SIDE).
        name: String,
        /// The note's text.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// Read the note from a file instead.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Deliver the outbox, then fetch and decrypt everything waiting.
    Sync,
    /// Show the conversation with a contact.
    Read {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stay connected and print notes as they arrive (Ctrl-C to stop).
    Watch,
    /// Run a whole negotiation on this machine: a relay, two parties, a short exchange.
    Demo,
}

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4443")]
    pub listen: SocketAddr,
    /// Directory for the relay's certificate, address file and embedded store.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// `sqlite` (embedded, in DIR) or a PostgreSQL URL (postgres://…).
    #[arg(long, default_value = "sqlite", env = "BACKCHANNEL_RELAY_STORE")]
    pub store: String,
    /// Host name or IP that clients use to reach this relay (default: the listen IP).
    #[arg(long)]
    pub public_host: Option<String>,
    /// Size of every stored block in bytes (all clients of a deployment use it).
    #[arg(long, default_value_t = backchannel_wire::DEFAULT_BLOCK_SIZE)]
    pub block_size: usize,
    /// How long an unacknowledged block is kept: e.g. 14d.
    #[arg(long, default_value = "14d", value_name = "DURATION")]
    pub ttl: String,
}
