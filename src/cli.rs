//! `millrace serve` and `millrace admin ...`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::config::{AdminArgs, AdminCommand, Cli, Command, ServeArgs};
use crate::store::{Database, accounts, third_party};
use crate::{App, Server};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Admin(args) => admin(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let secrets = args.storage.secret_box()?;
    let db = Database::open(&args.storage).await?;
    if let Some(dev) = &config.dev {
        accounts::ensure_dev_account(&db.pool, &secrets, &dev.access_key_id, &dev.secret_access_key)
            .await
            .context("creating the development account")?;
        tracing::info!(account_id = "000000000000", access_key_id = %dev.access_key_id, "development account ready");
    }
    let server = Server::bind(App::new(db.pool.clone(), secrets, config.clone()))
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(address = %server.local_addr(), region = %config.region, "millrace is serving");
    let result = server.run(shutdown_signal()).await;
    tracing::info!("shutting down");
    db.close().await;
    result
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let secrets = args.storage.secret_box()?;
    let db = Database::open(&args.storage).await?;
    let result = run_admin(&db, &secrets, args.command).await;
    db.close().await;
    result
}

async fn run_admin(db: &Database, secrets: &crate::crypto::SecretBox, command: AdminCommand) -> anyhow::Result<()> {
    let mut tx = db.pool.begin().await?;
    match command {
        AdminCommand::CreateAccount { name, account_id } => {
            let key = accounts::create_account(&mut tx, secrets, &name, account_id.as_deref()).await?;
            println!("{}", serde_json::to_string(&key)?);
        }
        AdminCommand::CreateAccessKey { account_id } => {
            let key = accounts::create_access_key(&mut tx, secrets, &account_id).await?;
            println!("{}", serde_json::to_string(&key)?);
        }
        AdminCommand::ListAccounts => {
            for account in accounts::list_accounts(&mut tx).await? {
                println!("{}", serde_json::to_string(&account)?);
            }
        }
        AdminCommand::DeleteAccessKey { access_key_id } => {
            accounts::delete_access_key(&mut tx, &access_key_id).await?;
        }
        AdminCommand::CreateThirdPartyClient { account_id } => {
            let client = third_party::create_client(&mut tx, &account_id).await?;
            println!("{}", serde_json::to_string(&client)?);
        }
        AdminCommand::ListThirdPartyClients { account_id } => {
            for client in third_party::list_clients(&mut tx, account_id.as_deref()).await? {
                println!("{}", serde_json::to_string(&client)?);
            }
        }
        AdminCommand::DeleteThirdPartyClient { client_id } => {
            third_party::delete_client(&mut tx, client_id).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
