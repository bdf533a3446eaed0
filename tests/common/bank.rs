//! The bank account of DESIGN.md, with the macros.
#![allow(missing_docs)]

use std::fmt;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// An account number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[event(tags = ["account"])]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened {
        owner: String,
    },
    #[event(tags = ["large"], version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
    Deposited {
        amount: u64,
        currency: String,
    },
    #[event(rename = "money-withdrawn")]
    Withdrawn {
        amount: u64,
    },
}

/// Version 1 of `Deposited` had no currency: everything was in euros.
pub fn deposited_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
    v1["currency"] = "EUR".into();
    v1
}

#[command(id = account_id)]
#[derive(Debug, Clone)]
pub enum AccountCommand {
    Open {
        account_id: AccountId,
        owner: String,
    },
    #[command(expected_version = version, command_id = request_id)]
    Deposit {
        account_id: AccountId,
        amount: u64,
        version: Option<u64>,
        request_id: String,
    },
    #[command(id = from)]
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    AlreadyOpen,
    NotOpen,
    ZeroAmount,
    Insufficient { balance: u64 },
    OverLimit,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::AlreadyOpen => f.write_str("account already open"),
            AccountError::NotOpen => f.write_str("account not open"),
            AccountError::ZeroAmount => f.write_str("amount must be positive"),
            AccountError::Insufficient { balance } => write!(f, "insufficient funds: {balance}"),
            AccountError::OverLimit => f.write_str("balance over the limit"),
        }
    }
}

/// The highest balance an account may reach.
pub const LIMIT: u64 = 1_000_000;

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
                if self.balance < amount {
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

    fn invariants(&self) -> Result<(), AccountError> {
        if self.balance > LIMIT {
            return Err(AccountError::OverLimit);
        }
        Ok(())
    }

    /// A hand-written method in the same block: left as it is.
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
