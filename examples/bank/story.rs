//! The story the bank examples tell, on whatever store they are given: open two accounts
//! (or recover them), deposit, retry a deposit, lose a race, transfer, overdraw, and print
//! the balances. Every run continues where the previous one stopped.

use std::error::Error;
use std::io::Write;

use factum::{Aggregate, Event, Journal, Receipt, Repository, SnapshotPolicy, SnapshotStore};

use crate::domain::{Account, AccountCommand, AccountError, AccountId};

/// Snapshot every third event: small, so that a short story takes snapshots. A real
/// application would pick hundreds.
pub const SNAPSHOT_EVERY: u64 = 3;

/// Runs the story on `journal` and `snapshots`, printing each step to `out` as it happens.
pub async fn run<J, S>(journal: J, snapshots: S, out: &mut dyn Write) -> Result<(), Box<dyn Error>>
where
    J: Journal + Clone,
    S: SnapshotStore + Clone,
{
    let accounts: Repository<Account> = Repository::builder(journal.clone())
        .snapshots(snapshots.clone(), SnapshotPolicy::Every(SNAPSHOT_EVERY))
        .keep_snapshots(2)
        .dedupe_window(1024)
        .build();
    let alice = AccountId("alice".into());
    let bob = AccountId("bob".into());

    // Recover the accounts from the store, or open them on the first run.
    for (id, owner) in [(&alice, "Alice"), (&bob, "Bob")] {
        let (state, version) = accounts.state(id).await?;
        if version == 0 {
            let open = AccountCommand::Open {
                account_id: id.clone(),
                owner: owner.into(),
            };
            let receipt = accounts.send(open).await?;
            step(out, format!("open account {id} for {owner}"), ok(&receipt))?;
        } else {
            let from = recovered_from(&journal, &snapshots, &Account::persistence_id(id)).await?;
            step(
                out,
                format!("recovered account {id}"),
                format!(
                    "from {from}: version {version}, balance {} EUR",
                    state.balance
                ),
            )?;
        }
    }

    // After a restart, the last run's final step is retried: the credit of its transfer.
    // The dedupe window was recovered with the account, so bob is not credited twice.
    let (_, version) = accounts.state(&alice).await?;
    if version > 1 {
        let last_transfer = AccountCommand::Transfer {
            from: alice.clone(),
            to: bob.clone(),
            amount: 30,
        };
        let (_, before) = accounts.state(&bob).await?;
        let retry = accounts.send(credit_for(&last_transfer, version)).await?;
        if retry.version != before {
            return Err(format!("the credit ran twice: {retry:?}").into());
        }
        step(
            out,
            format!("retry transfer-alice-{version} (last run)"),
            format!("same receipt, version {}: deduplicated", retry.version),
        )?;
    }

    // A deposit that carries the version it was decided on and a request id.
    let deposit = AccountCommand::Deposit {
        account_id: alice.clone(),
        amount: 100,
        version: Some(version),
        request_id: format!("deposit-alice-{version}"),
    };
    let first = accounts.send(deposit.clone()).await?;
    step(
        out,
        format!("deposit 100 to alice at version {version}"),
        ok(&first),
    )?;

    // The client never heard back and sends the very same command again. The dedupe window
    // answers with the first receipt: `handle` does not run, nothing is written (and the
    // command's expected version, now stale, is not even checked).
    let retry = accounts.send(deposit).await?;
    if retry != first {
        return Err(format!("the retry ran again: {retry:?} after {first:?}").into());
    }
    step(
        out,
        format!("retry deposit-alice-{version}"),
        format!("same receipt, version {}: deduplicated", retry.version),
    )?;

    // A deposit decided on a stale version is refused; the client reloads and decides again.
    let stale = AccountCommand::Deposit {
        account_id: alice.clone(),
        amount: 5,
        version: Some(version),
        request_id: format!("bonus-alice-{version}"),
    };
    let actual = match accounts.send(stale).await {
        Err(factum::Error::Conflict { actual, .. }) => actual,
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    };
    step(
        out,
        format!("deposit 5 to alice at version {version}"),
        format!("conflict: alice is at version {actual}"),
    )?;
    let bonus = AccountCommand::Deposit {
        account_id: alice.clone(),
        amount: 5,
        version: Some(actual),
        request_id: format!("bonus-alice-{actual}"),
    };
    let receipt = accounts.send(bonus).await?;
    step(
        out,
        format!("deposit 5 to alice at version {actual}"),
        ok(&receipt),
    )?;

    // A transfer: alice's account decides and is debited; the credit of bob's account
    // follows from the transfer, keyed by the debit's version so that it happens once.
    let transfer = AccountCommand::Transfer {
        from: alice.clone(),
        to: bob.clone(),
        amount: 30,
    };
    let debit = accounts.send(transfer.clone()).await?;
    let credit = accounts.send(credit_for(&transfer, debit.version)).await?;
    step(
        out,
        "transfer 30 from alice to bob".into(),
        format!("alice: {}; bob: {}", ok(&debit), ok(&credit)),
    )?;

    // An overdraft: bob's account refuses it, and nothing is written.
    let (bob_state, _) = accounts.state(&bob).await?;
    let overdraft = AccountCommand::Transfer {
        from: bob.clone(),
        to: alice.clone(),
        amount: bob_state.balance + 1,
    };
    match accounts.send(overdraft).await {
        Err(factum::Error::Domain(error @ AccountError::Insufficient { .. })) => step(
            out,
            format!("transfer {} from bob to alice", bob_state.balance + 1),
            format!("rejected: {error}"),
        )?,
        other => return Err(format!("expected a rejected overdraft, got {other:?}").into()),
    }

    for id in [&alice, &bob] {
        let (state, version) = accounts.state(id).await?;
        writeln!(
            out,
            "balance of {id}: {} EUR (version {version})",
            state.balance
        )?;
    }
    Ok(())
}

/// The deposit that completes a transfer on the receiving account. Its request id names
/// the debit, so that a retry of this step (after a crash, say) credits only once.
fn credit_for(transfer: &AccountCommand, debit_version: u64) -> AccountCommand {
    let AccountCommand::Transfer { from, to, amount } = transfer else {
        unreachable!("only transfers are credited")
    };
    AccountCommand::Deposit {
        account_id: to.clone(),
        amount: *amount,
        version: None,
        request_id: format!("transfer-{from}-{debit_version}"),
    }
}

/// Where recovery starts: the newest usable snapshot and the events after it, read from
/// the stores the way the repository reads them.
async fn recovered_from(
    journal: &impl Journal,
    snapshots: &impl SnapshotStore,
    persistence_id: &str,
) -> Result<String, Box<dyn Error>> {
    let highest = journal.highest_sequence_nr(persistence_id).await?;
    let snapshot = snapshots
        .load(persistence_id, u64::MAX)
        .await?
        .filter(|s| Some(s.version) == Account::SNAPSHOT_VERSION);
    Ok(match snapshot {
        Some(s) => format!(
            "snapshot at {} + {}",
            s.sequence_nr,
            events(highest - s.sequence_nr)
        ),
        None => format!("{} (no snapshot yet)", events(highest)),
    })
}

fn events(n: u64) -> String {
    if n == 1 {
        "1 event".into()
    } else {
        format!("{n} events")
    }
}

/// A receipt as `Deposited, version 2`: the stored names of its events and the version.
fn ok(receipt: &Receipt<Account>) -> String {
    let names: Vec<&str> = receipt.events.iter().map(Event::manifest).collect();
    format!("{}, version {}", names.join(", "), receipt.version)
}

fn step(out: &mut dyn Write, what: String, outcome: String) -> std::io::Result<()> {
    writeln!(out, "{what:<38} -> {outcome}")
}
