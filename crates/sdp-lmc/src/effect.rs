//! What the devices' commands do to the configuration database, and doing it.

use serde_json::Value;

/// What a command does to the configuration database.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    CreateProcessingBlock(sdp_config::ProcessingBlock),
    /// Merges `fields` into `/pb/<pb_id>/state` (created if absent), keeping what others wrote there.
    MergeProcessingBlockState {
        pb_id: String,
        fields: Value,
    },
    /// Merges per-scan parameters into the processing block's `scan_parameters`.
    MergeScanParameters {
        pb_id: String,
        scan_parameters: Value,
    },
    /// Deletes `/pb/<pb_id>` with its owner and state entries.
    DeleteProcessingBlock(String),
    PutSubarray {
        id: String,
        entry: Value,
    },
    DeleteSubarray {
        id: String,
    },
    PutMaster {
        entry: Value,
    },
}

/// Applies a command's effects in one configuration-database transaction; returns once it commits, with what
/// to await for its writes to be on disk.
pub async fn apply(config: &sdp_config::Config, effects: &[Effect]) -> Result<sdp_config::Durable, sdp_config::Error> {
    use sdp_config::keys::paths;
    if effects.is_empty() {
        return Ok(sdp_config::Durable::default());
    }
    config
        .txn_committed(|t| async move {
            for effect in effects {
                match effect {
                    Effect::CreateProcessingBlock(pb) => t.create_processing_block(pb).await?,
                    Effect::MergeProcessingBlockState { pb_id, fields } => {
                        let fields = fields.as_object().cloned().unwrap_or_default();
                        t.merge_state(&paths::pb_state(pb_id), &fields).await?;
                    }
                    Effect::MergeScanParameters { pb_id, scan_parameters } => {
                        let mut pb = t
                            .get_processing_block(pb_id)
                            .await?
                            .ok_or_else(|| sdp_config::Error::Vanished(paths::pb(pb_id)))?;
                        let fields = scan_parameters.as_object().cloned().unwrap_or_default();
                        sdp_config::json::merge_fields(&mut pb.scan_parameters, &fields);
                        t.update_json(&paths::pb(pb_id), &pb).await?;
                    }
                    Effect::DeleteProcessingBlock(pb_id) => {
                        t.delete(&paths::pb(pb_id), false, true).await?;
                    }
                    Effect::PutSubarray { id, entry } => t.put_json(&paths::subarray(id), entry).await?,
                    Effect::DeleteSubarray { id } => {
                        t.delete(&paths::subarray(id), false, false).await?;
                    }
                    Effect::PutMaster { entry } => t.put_json(paths::MASTER, entry).await?,
                }
            }
            Ok(())
        })
        .await
        .map(|((), durable)| durable)
}
