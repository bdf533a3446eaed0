//! The bank account of DESIGN.md: events, commands and the aggregate, written with the
//! three macros. Shared by the `bank`, `postgres` and `custom_journal` examples.

use std::fmt;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// An account number, such as `alice`. The persistence id is `account-alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened to an account. Every event is tagged `account`; deposits also `large`.
#[event(tags = ["account"])]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// The account was opened.
    Opened { owner: String },
    /// Money came in. Version 1 had no currency (see `deposited_v1_to_v2`).
    #[event(tags = ["large"], version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
    Deposited { amount: u64, currency: String },
    /// Money went out. Stored as `money-withdrawn`, whatever the variant is called in code.
    #[event(rename = "money-withdrawn")]
    Withdrawn { amount: u64 },
}

/// Lifts a stored version-1 `Deposited` (no currency: everything was in euros) to version 2.
pub fn deposited_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
    v1["currency"] = "EUR".into();
    v1
}

/// What can be asked of an account.
#[command(id = account_id)] // the default for every variant
#[derive(Debug, Clone)]
pub enum AccountCommand {
    /// Open the account for `owner`.
    Open {
        account_id: AccountId,
        owner: String,
    },
    /// Deposit `amount`, only at `version` when it is `Some`, at most once per `request_id`.
    #[command(expected_version = version, command_id = request_id)]
    Deposit {
        account_id: AccountId,
        amount: u64,
        version: Option<u64>,
        request_id: String,
    },
    /// Take `amount` out of `from` for `to`. The account `to` is credited by a `Deposit`.
    #[command(id = from)]
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: u64,
    },
}

/// Why an account refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// `Open` on an open account.
    AlreadyOpen,
    /// Anything but `Open` on an account that is not open.
    NotOpen,
    /// A deposit or transfer of nothing.
    ZeroAmount,
    /// A transfer of more than the balance.
    Insufficient { balance: u64 },
    /// A balance above [`LIMIT`] (checked by `invariants`).
    OverLimit,
}

/// The most an account may hold.
pub const LIMIT: u64 = 1_000_000;

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::AlreadyOpen => f.write_str("account already open"),
            AccountError::NotOpen => f.write_str("account not open"),
            AccountError::ZeroAmount => f.write_str("amount must be positive"),
            AccountError::Insufficient { balance } => {
                write!(f, "insufficient funds: the balance is {balance}")
            }
            AccountError::OverLimit => f.write_str("balance over the limit"),
        }
    }
}

impl std::error::Error for AccountError {}

/// The state of one account: the aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub owner: Option<String>,
}

#[aggregate(name = "account", snapshot)]
impl Account {
    fn handle(&self, cmd: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match cmd {
            AccountCommand::Open { owner, .. } => {
                if self.is_open() {
                    return Err(AccountError::AlreadyOpen);
                }
                Ok(vec![AccountEvent::Opened { owner }])
            }
            AccountCommand::Deposit { amount, .. } => {
                self.check(amount)?;
                Ok(vec![AccountEvent::Deposited {
                    amount,
                    currency: "EUR".into(),
                }])
            }
            AccountCommand::Transfer { amount, .. } => {
                self.check(amount)?;
                if amount > self.balance {
                    return Err(AccountError::Insufficient {
                        balance: self.balance,
                    });
                }
                Ok(vec![AccountEvent::Withdrawn { amount }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { amount, .. } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }

    /// Checked on the state the new events would produce, before they are written.
    fn invariants(&self) -> Result<(), AccountError> {
        if self.balance > LIMIT {
            return Err(AccountError::OverLimit);
        }
        Ok(())
    }

    /// Whether the account was opened.
    pub fn is_open(&self) -> bool {
        self.owner.is_some()
    }

    fn check(&self, amount: u64) -> Result<(), AccountError> {
        if !self.is_open() {
            return Err(AccountError::NotOpen);
        }
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        Ok(())
    }
}
