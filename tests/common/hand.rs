//! The same bank account as `bank.rs`, with the three traits written by hand.

use factum::{Aggregate, CodecError, Command, Event, Tags};
use serde::{Deserialize, Serialize};

use super::bank::{AccountCommand, AccountError, AccountId, LIMIT};

/// `bank::Account`'s state, with a hand-written `Aggregate` impl.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandAccount {
    pub balance: u64,
    pub owner: Option<String>,
}

/// `bank::AccountEvent`, with a hand-written `Event` impl.
#[derive(Debug, Clone, PartialEq)]
pub enum HandEvent {
    Opened { owner: String },
    Deposited { amount: u64, currency: String },
    Withdrawn { amount: u64 },
}

#[derive(Serialize)]
struct OpenedRef<'a> {
    owner: &'a String,
}
#[derive(Serialize)]
struct DepositedRef<'a> {
    amount: &'a u64,
    currency: &'a String,
}
#[derive(Serialize)]
struct WithdrawnRef<'a> {
    amount: &'a u64,
}
#[derive(Deserialize)]
struct Opened {
    owner: String,
}
#[derive(Deserialize)]
struct Deposited {
    amount: u64,
    currency: String,
}
#[derive(Deserialize)]
struct Withdrawn {
    amount: u64,
}

impl Event for HandEvent {
    fn manifest(&self) -> &'static str {
        match self {
            HandEvent::Opened { .. } => "Opened",
            HandEvent::Deposited { .. } => "Deposited",
            HandEvent::Withdrawn { .. } => "money-withdrawn",
        }
    }

    fn version(&self) -> u32 {
        match self {
            HandEvent::Deposited { .. } => 2,
            _ => 1,
        }
    }

    fn tags(&self) -> Tags {
        match self {
            HandEvent::Deposited { .. } => Tags::fixed(&["account", "large"]),
            _ => Tags::fixed(&["account"]),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(match self {
            HandEvent::Opened { owner } => serde_json::to_vec(&OpenedRef { owner })?,
            HandEvent::Deposited { amount, currency } => {
                serde_json::to_vec(&DepositedRef { amount, currency })?
            }
            HandEvent::Withdrawn { amount } => serde_json::to_vec(&WithdrawnRef { amount })?,
        })
    }

    fn decode(manifest: &str, version: u32, payload: &[u8]) -> Result<Self, CodecError> {
        let unknown_version = |current| CodecError::UnknownVersion {
            manifest: manifest.to_owned(),
            version,
            current,
        };
        match (manifest, version) {
            ("Opened", 1) => {
                let Opened { owner } = serde_json::from_slice(payload)?;
                Ok(HandEvent::Opened { owner })
            }
            ("Deposited", 1 | 2) => {
                let Deposited { amount, currency } = if version == 2 {
                    serde_json::from_slice(payload)?
                } else {
                    let v1 = serde_json::from_slice(payload)?;
                    serde_json::from_value(super::bank::deposited_v1_to_v2(v1))?
                };
                Ok(HandEvent::Deposited { amount, currency })
            }
            ("Deposited", _) => Err(unknown_version(2)),
            ("money-withdrawn", 1) => {
                let Withdrawn { amount } = serde_json::from_slice(payload)?;
                Ok(HandEvent::Withdrawn { amount })
            }
            ("Opened" | "money-withdrawn", _) => Err(unknown_version(1)),
            _ => Err(CodecError::UnknownManifest(manifest.to_owned())),
        }
    }
}

/// `bank::AccountCommand`, with a hand-written `Command` impl.
#[derive(Debug, Clone)]
pub enum HandCommand {
    Open {
        account_id: AccountId,
        owner: String,
    },
    Deposit {
        account_id: AccountId,
        amount: u64,
        version: Option<u64>,
        request_id: String,
    },
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: u64,
    },
}

impl Command for HandCommand {
    type Id = AccountId;

    fn aggregate_id(&self) -> &AccountId {
        match self {
            HandCommand::Open { account_id, .. } | HandCommand::Deposit { account_id, .. } => {
                account_id
            }
            HandCommand::Transfer { from, .. } => from,
        }
    }

    fn expected_version(&self) -> Option<u64> {
        match self {
            HandCommand::Deposit { version, .. } => *version,
            _ => None,
        }
    }

    fn command_id(&self) -> Option<&str> {
        match self {
            HandCommand::Deposit { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    fn retry_copy(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl HandAccount {
    fn check(&self, amount: u64) -> Result<(), AccountError> {
        if self.owner.is_none() {
            return Err(AccountError::NotOpen);
        }
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        Ok(())
    }
}

impl Aggregate for HandAccount {
    type Command = HandCommand;
    type Event = HandEvent;
    type Error = AccountError;

    const NAME: &'static str = "account";
    const SNAPSHOT_VERSION: Option<u32> = Some(1);

    fn handle(&self, cmd: HandCommand) -> Result<Vec<HandEvent>, AccountError> {
        match cmd {
            HandCommand::Open { owner, .. } => {
                if self.owner.is_some() {
                    return Err(AccountError::AlreadyOpen);
                }
                Ok(vec![HandEvent::Opened { owner }])
            }
            HandCommand::Deposit { amount, .. } => {
                self.check(amount)?;
                Ok(vec![HandEvent::Deposited {
                    amount,
                    currency: "EUR".into(),
                }])
            }
            HandCommand::Transfer { amount, .. } => {
                self.check(amount)?;
                if self.balance < amount {
                    return Err(AccountError::Insufficient {
                        balance: self.balance,
                    });
                }
                Ok(vec![HandEvent::Withdrawn { amount }])
            }
        }
    }

    fn apply(&mut self, event: &HandEvent) {
        match event {
            HandEvent::Opened { owner } => self.owner = Some(owner.clone()),
            HandEvent::Deposited { amount, .. } => self.balance += amount,
            HandEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }

    fn invariants(&self) -> Result<(), AccountError> {
        if self.balance > LIMIT {
            return Err(AccountError::OverLimit);
        }
        Ok(())
    }

    fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
        Ok(serde_json::to_value(self)?)
    }

    fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
        Ok(serde_json::from_value(value)?)
    }
}

/// The hand-written command equal to a macro one.
pub fn to_hand(command: &AccountCommand) -> HandCommand {
    match command.clone() {
        AccountCommand::Open { account_id, owner } => HandCommand::Open { account_id, owner },
        AccountCommand::Deposit {
            account_id,
            amount,
            version,
            request_id,
        } => HandCommand::Deposit {
            account_id,
            amount,
            version,
            request_id,
        },
        AccountCommand::Transfer { from, to, amount } => HandCommand::Transfer { from, to, amount },
    }
}
