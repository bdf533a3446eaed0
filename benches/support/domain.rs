//! The benchmark domain: Deposit { account_id, amount } -> Deposited { amount }, written
//! twice: with the macros (`generated`) and by hand (`hand`), to compare the two on the
//! same workloads. Shared by `examples/loadgen.rs` and the criterion benches.
#![allow(dead_code)]

use factum::Aggregate;

pub mod generated {
    use factum::prelude::*;
    use serde::{Deserialize, Serialize};

    #[event(tags = ["account"])]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Deposited {
        pub amount: u64,
    }

    #[command(id = account_id, command_id = request_id)]
    #[derive(Debug, Clone)]
    pub struct Deposit {
        pub account_id: String,
        pub amount: u64,
        pub request_id: Option<String>,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub balance: u64,
    }

    #[aggregate(name = "account", snapshot)]
    impl Account {
        fn handle(&self, cmd: Deposit) -> Result<Deposited, String> {
            if cmd.amount == 0 {
                return Err("zero deposit".into());
            }
            Ok(Deposited { amount: cmd.amount })
        }

        fn apply(&mut self, event: &Deposited) {
            self.balance += event.amount;
        }
    }
}

pub mod hand {
    use factum::{Aggregate, CodecError, Command, Event, Tags};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub balance: u64,
    }

    #[derive(Debug, Clone)]
    pub struct Deposit {
        pub account_id: String,
        pub amount: u64,
        pub request_id: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Deposited {
        pub amount: u64,
    }

    impl Command for Deposit {
        type Id = String;
        fn aggregate_id(&self) -> &String {
            &self.account_id
        }
        fn command_id(&self) -> Option<&str> {
            self.request_id.as_deref()
        }
        fn retry_copy(&self) -> Option<Self> {
            Some(self.clone())
        }
    }

    impl Event for Deposited {
        fn manifest(&self) -> &'static str {
            "Deposited"
        }
        fn version(&self) -> u32 {
            1
        }
        fn tags(&self) -> Tags {
            Tags::fixed(&["account"])
        }
        fn encode(&self) -> Result<Vec<u8>, CodecError> {
            Ok(serde_json::to_vec(self)?)
        }
        fn decode(manifest: &str, version: u32, payload: &[u8]) -> Result<Self, CodecError> {
            match (manifest, version) {
                ("Deposited", 1) => Ok(serde_json::from_slice(payload)?),
                ("Deposited", v) => Err(CodecError::UnknownVersion {
                    manifest: manifest.into(),
                    version: v,
                    current: 1,
                }),
                _ => Err(CodecError::UnknownManifest(manifest.into())),
            }
        }
    }

    impl Aggregate for Account {
        type Command = Deposit;
        type Event = Deposited;
        type Error = String;
        const NAME: &'static str = "account";
        const SNAPSHOT_VERSION: Option<u32> = Some(1);

        fn handle(&self, cmd: Deposit) -> Result<Vec<Deposited>, String> {
            if cmd.amount == 0 {
                return Err("zero deposit".into());
            }
            Ok(vec![Deposited { amount: cmd.amount }])
        }
        fn apply(&mut self, event: &Deposited) {
            self.balance += event.amount;
        }
        fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
            Ok(serde_json::to_value(self)?)
        }
        fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
            Ok(serde_json::from_value(value)?)
        }
    }
}

/// What the workloads need of a domain.
pub trait Bank: Aggregate<Error = String> {
    fn deposit(account: usize, request_id: Option<String>) -> Self::Command;
}

impl Bank for generated::Account {
    fn deposit(account: usize, request_id: Option<String>) -> generated::Deposit {
        generated::Deposit {
            account_id: format!("acc-{account}"),
            amount: 1,
            request_id,
        }
    }
}

impl Bank for hand::Account {
    fn deposit(account: usize, request_id: Option<String>) -> hand::Deposit {
        hand::Deposit {
            account_id: format!("acc-{account}"),
            amount: 1,
            request_id,
        }
    }
}
