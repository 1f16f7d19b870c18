//! `just token <role>`: prints a development token (and nothing else, so `$(just token admin)`
//! works), signed with the local secret `just dev` gives the gateway (made if absent).
//! `just api-key <name> <role>`: prints a new API key, then on stderr the entry to configure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use auth::{Role, api_keys, dev};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "token", about = "Development tokens and API keys for the gateway")]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// A JWT for `role` signed with the development secret.
    Jwt {
        role: Role,
        /// The token's subject (who it speaks for).
        #[arg(long, default_value = "developer")]
        subject: String,
        /// How long it is valid, in hours.
        #[arg(long, default_value_t = 12)]
        hours: u64,
        /// The secret file (the gateway's GATEWAY_JWT_SECRET_FILE).
        #[arg(long, env = "GATEWAY_JWT_SECRET_FILE", default_value = dev::DEV_SECRET_FILE)]
        secret_file: PathBuf,
    },
    /// A new random API key for `name` with `role`.
    ApiKey { name: String, role: Role },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printed = match cli.what {
        What::Jwt { role, subject, hours, secret_file } => dev::secret_file(&secret_file)
            .map_err(|e| format!("cannot read or make {}: {e}", secret_file.display()))
            .and_then(|secret| {
                let claims = dev::Claims::new(&subject, role, Duration::from_secs(hours * 3600));
                dev::sign(&secret, &claims).map_err(|e| e.to_string())
            })
            .map(|token| println!("{token}")),
        What::ApiKey { name, role } => {
            api_keys::generate(&name, role).map_err(|e| e.to_string()).map(|(key, entry)| {
                println!("{key}");
                eprintln!("configure it with GATEWAY_API_KEYS={entry} (or a line of GATEWAY_API_KEYS_FILE)");
            })
        }
    };
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("token: {error}");
            ExitCode::FAILURE
        }
    }
}
