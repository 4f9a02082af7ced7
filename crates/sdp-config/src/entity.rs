//! Typed entities in the original's JSON shape, and the transaction operations on them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::keys::paths;
use crate::keys::validate_id;
use crate::lease::Lease;
use crate::ownership::{Owner, Taken};
use crate::txn::parse;
use crate::txn::Txn;

/// A processing script (workflow) reference: `type:id:version`, e.g. `realtime:testdask:0.1.0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub version: String,
}

impl std::str::FromStr for Workflow {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split(':').collect::<Vec<_>>().as_slice() {
            [kind, id, version] if !kind.is_empty() && !id.is_empty() && !version.is_empty() => {
                Ok(Workflow { kind: kind.to_string(), id: id.to_string(), version: version.to_string() })
            }
            _ => Err(Error::Invalid("Please specify workflow as 'type:name:version'!".into())),
        }
    }
}

/// The one field of `/pb/<pb_id>/state` that says how a processing block stands, `state`, in the original's
/// words: the controller writes `executing` when it deploys the block's script, the script `executing` when it
/// claims the block and `finished` or `failed` (with `error`) when it ends, and the controller `failed` when the
/// script cannot run or ended without saying so. Other words (the original teststate's `error`) are kept as
/// written. The rest of the state is the script's to publish (`deployments`, `receiveAddresses`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockState {
    Executing,
    Finished,
    Failed,
    /// A word this version does not use.
    Other(String),
}

impl BlockState {
    pub fn as_str(&self) -> &str {
        match self {
            BlockState::Executing => "executing",
            BlockState::Finished => "finished",
            BlockState::Failed => "failed",
            BlockState::Other(word) => word,
        }
    }

    /// The `state` of a `/pb/<id>/state` value, if it has one.
    pub fn of(state: Option<&Value>) -> Option<BlockState> {
        Some(match state?.get("state")?.as_str()? {
            "executing" => BlockState::Executing,
            "finished" => BlockState::Finished,
            "failed" => BlockState::Failed,
            other => BlockState::Other(other.to_string()),
        })
    }

    /// The fields that set this state (and clear the error of an earlier one).
    pub fn fields(&self) -> Value {
        serde_json::json!({"state": self.as_str(), "error": null})
    }

    /// The fields of a failure, and why.
    pub fn failed(error: impl std::fmt::Display) -> Value {
        serde_json::json!({"state": BlockState::Failed.as_str(), "error": error.to_string()})
    }
}

/// `/pb/<pb_id>`. Keys this version does not know are kept in `extra` and written back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessingBlock {
    pub pb_id: String,
    pub sbi_id: Option<String>,
    pub workflow: Workflow,
    #[serde(default = "empty_object")]
    pub parameters: Value,
    #[serde(default = "empty_object")]
    pub scan_parameters: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl ProcessingBlock {
    pub fn new(pb_id: &str, workflow: Workflow) -> ProcessingBlock {
        ProcessingBlock {
            pb_id: pb_id.to_string(),
            sbi_id: None,
            workflow,
            parameters: empty_object(),
            scan_parameters: empty_object(),
            extra: Map::new(),
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        validate_id("processing block", &self.pb_id)?;
        for (field, value) in [("parameters", &self.parameters), ("scan_parameters", &self.scan_parameters)] {
            if !(value.is_object() || value.is_null()) {
                return Err(Error::Invalid(format!(
                    "{field} of processing block {} must be a JSON object of named values, not {value}",
                    self.pb_id
                )));
            }
        }
        Ok(())
    }

    /// Reads the entry stored at `/pb/<pb_id>`: a processing block whose `pb_id` is its key's.
    pub fn read(pb_id: &str, text: &str) -> Result<ProcessingBlock, Error> {
        let pb = read_entry(&paths::pb(pb_id), pb_id, text, "pb_id", |pb: &ProcessingBlock| &pb.pb_id)?;
        pb.validate()?;
        Ok(pb)
    }
}

/// Parses the entry stored at `path` and checks that its ID `field` names its key, `key_id`: deployers name
/// releases, files and states after it.
pub(crate) fn read_entry<T: serde::de::DeserializeOwned>(
    path: &str,
    key_id: &str,
    text: &str,
    field: &str,
    id: impl Fn(&T) -> &String,
) -> Result<T, Error> {
    let entry: T = parse(path, text)?;
    let found = id(&entry);
    if found != key_id {
        return Err(Error::Invalid(format!("{field} {found:?} of {path} must be the key's own ID, {key_id:?}")));
    }
    Ok(entry)
}

impl Txn {
    /// The lowest free ID of the form `<type>-<YYYYMMDD>-<NNNN>` for today (local date). The commit requires
    /// the ID still free, so two clients never get the same one (the one that commits second runs again and
    /// gets the next). The first ID of a type lists the day's IDs; the client then keeps them current with a
    /// watch, so the next one reads nothing ([`crate::choices`]).
    pub async fn new_processing_block_id(&self, kind: &str) -> Result<String, Error> {
        let date = chrono::Local::now().format("%Y%m%d").to_string();
        let stem = format!("{kind}-{date}-");
        let number = self
            .choose_new_path(&paths::pb(&stem), lowest_free_number)
            .await?
            .ok_or_else(|| Error::Invalid(format!("no free processing block ID left for {stem}")))?;
        Ok(format!("{stem}{number}"))
    }

    /// Creates a processing block for `workflow` under the next free ID of its type; returns the ID.
    pub async fn create_new_processing_block(&self, workflow: Workflow, parameters: Value) -> Result<String, Error> {
        let pb_id = self.new_processing_block_id(&workflow.kind).await?;
        let mut pb = ProcessingBlock::new(&pb_id, workflow);
        pb.parameters = parameters;
        self.create_processing_block(&pb).await?;
        Ok(pb_id)
    }

    pub async fn create_processing_block(&self, pb: &ProcessingBlock) -> Result<(), Error> {
        pb.validate()?;
        self.create_json(&paths::pb(&pb.pb_id), pb, None).await
    }

    pub async fn get_processing_block(&self, pb_id: &str) -> Result<Option<ProcessingBlock>, Error> {
        self.get(&paths::pb(pb_id)).await?.map(|text| ProcessingBlock::read(pb_id, &text)).transpose()
    }

    pub async fn list_processing_blocks(&self) -> Result<Vec<String>, Error> {
        self.list_ids(paths::PB).await
    }

    /// Deletes a processing block with its owner and state entries.
    pub async fn delete_processing_block(&self, pb_id: &str) -> Result<(), Error> {
        self.delete(&paths::pb(pb_id), true, true).await.map(|_| ())
    }

    pub async fn get_processing_block_owner(&self, pb_id: &str) -> Result<Option<Owner>, Error> {
        self.get_json(&paths::pb_owner(pb_id)).await
    }

    /// Claims a processing block for this process, attached to `lease`, unless another live process owns it
    /// ([`Taken::Held`]); an owner entry on no live lease does not count ([`Txn::take_owner_entry`]).
    pub async fn take_processing_block(&self, pb_id: &str, lease: &Lease) -> Result<Taken, Error> {
        self.take_owner_entry(&paths::pb_owner(pb_id), lease).await
    }

    pub async fn is_processing_block_owner(&self, pb_id: &str) -> Result<bool, Error> {
        self.is_owner_of(&paths::pb_owner(pb_id)).await
    }

    /// Whether the owner entry at `path` names this process.
    pub async fn is_owner_of(&self, path: &str) -> Result<bool, Error> {
        Ok(self.get_json::<Owner>(path).await?.as_ref() == Some(&Owner::this_process()))
    }

    pub async fn get_processing_block_state(&self, pb_id: &str) -> Result<Option<Value>, Error> {
        self.get_json(&paths::pb_state(pb_id)).await
    }

    pub async fn put_processing_block_state(&self, pb_id: &str, state: &Value) -> Result<(), Error> {
        self.put_json(&paths::pb_state(pb_id), state).await
    }

    /// IDs of the entries directly below `root` (e.g. `/pb` → processing block IDs).
    pub(crate) async fn list_ids(&self, root: &str) -> Result<Vec<String>, Error> {
        let below = format!("{root}/");
        Ok(self
            .list_keys(&below, 0)
            .await?
            .into_iter()
            .filter_map(|p| p.strip_prefix(&below).map(str::to_string))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Deployment;
    use crate::keys::validate_id;

    #[test]
    fn workflow_from_cli_form() {
        let w: Workflow = "realtime:testdask:0.1.0".parse().unwrap();
        assert_eq!((w.kind.as_str(), w.id.as_str(), w.version.as_str()), ("realtime", "testdask", "0.1.0"));
        for bad in ["realtime:testdask", "a:b:c:d", "::", ""] {
            assert!(bad.parse::<Workflow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn processing_block_json_is_the_originals() {
        let pb = ProcessingBlock::new("realtime-20191121-0000", "realtime:testdask:0.1.0".parse().unwrap());
        let text = crate::json::to_canonical_string(&pb).unwrap();
        assert_eq!(
            text,
            "{\n  \"parameters\": {},\n  \"pb_id\": \"realtime-20191121-0000\",\n  \"sbi_id\": null,\n  \"scan_parameters\": {},\n  \"workflow\": {\n    \"id\": \"testdask\",\n    \"type\": \"realtime\",\n    \"version\": \"0.1.0\"\n  }\n}"
        );
    }

    #[test]
    fn unknown_processing_block_fields_survive() {
        let text = r#"{"pb_id":"a","sbi_id":"s","workflow":{"id":"i","type":"t","version":"v"},"parameters":{},"scan_parameters":{},"dependencies":[1]}"#;
        let pb: ProcessingBlock = serde_json::from_str(text).unwrap();
        assert_eq!(pb.extra["dependencies"], serde_json::json!([1]));
        assert!(crate::json::to_canonical_string(&pb).unwrap().contains("\"dependencies\""));
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("pb", "realtime-20191121-0000").is_ok());
        assert!(validate_id("pb", "").is_err());
        assert!(validate_id("pb", "a/b").is_err());
        assert!(validate_id("pb", &"x".repeat(65)).is_err());
    }

    #[test]
    fn entries_are_read_under_their_own_key_only() {
        let deployment = r#"{"deploy_id": "pb-1-dask", "type": "helm", "args": {"chart": "dask"}}"#;
        assert_eq!(Deployment::read("pb-1-dask", deployment).unwrap().args["chart"], "dask");
        let elsewhere = Deployment::read("other", deployment).unwrap_err().to_string();
        assert_eq!(elsewhere, r#"deploy_id "pb-1-dask" of /deploy/other must be the key's own ID, "other""#);
        let hostile = r#"{"deploy_id": "../../tmp/x", "type": "helm", "args": {}}"#;
        assert!(Deployment::read("x", hostile).is_err());
        let unknown = r#"{"deploy_id": "x", "type": "teleport", "args": {}}"#;
        assert!(Deployment::read("x", unknown).unwrap_err().to_string().contains("unknown deployment type"));
        let not_json = Deployment::read("x", "{").unwrap_err().to_string();
        assert!(not_json.starts_with("value of /deploy/x is not valid JSON for this entry"), "{not_json}");

        let pb = r#"{"pb_id": "pb-1", "workflow": {"type": "batch", "id": "t", "version": "1"}}"#;
        assert_eq!(ProcessingBlock::read("pb-1", pb).unwrap().workflow.id, "t");
        assert!(ProcessingBlock::read("pb-2", pb).unwrap_err().to_string().contains("must be the key's own ID"));
        let listed =
            r#"{"pb_id": "pb-1", "workflow": {"type": "batch", "id": "t", "version": "1"}, "parameters": [1]}"#;
        let refused = ProcessingBlock::read("pb-1", listed).unwrap_err().to_string();
        assert_eq!(refused, "parameters of processing block pb-1 must be a JSON object of named values, not [1]");
    }
}

/// The lowest of `0000` … `9999` not in `taken` (sorted, as listings are; other names may be mixed in).
fn lowest_free_number(taken: &mut dyn Iterator<Item = &str>) -> Option<String> {
    let mut numbers = taken
        .filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse::<u16>().ok())
        .peekable();
    (0..10_000u16)
        .find(|&candidate| {
            while numbers.next_if(|&n| n < candidate).is_some() {}
            numbers.peek() != Some(&candidate)
        })
        .map(|n| format!("{n:04}"))
}

#[cfg(test)]
mod id_tests {
    use super::lowest_free_number;

    #[test]
    fn lowest_free_number_skips_taken_numbers_and_ignores_other_names() {
        let free = |taken: &[&str]| lowest_free_number(&mut taken.iter().copied());
        assert_eq!(free(&[]).as_deref(), Some("0000"));
        assert_eq!(free(&["0000", "0001"]).as_deref(), Some("0002"));
        assert_eq!(free(&["0000", "0002"]).as_deref(), Some("0001"));
        assert_eq!(free(&["0001"]).as_deref(), Some("0000"));
        // Names that only start like a number neither take a number nor hide one.
        assert_eq!(free(&["0000", "0000x", "0001-test", "0002"]).as_deref(), Some("0001"));
        let all: Vec<String> = (0..10_000).map(|n| format!("{n:04}")).collect();
        assert_eq!(lowest_free_number(&mut all.iter().map(String::as_str)), None);
    }
}
