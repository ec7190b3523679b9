//! The daemon's state in an embedded transactional store (redb): one record per
//! container (and network, and volume), written in one transaction per change, so a `kill -9` at any moment
//! leaves either the old or the new record.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::network::Network;
use super::volumes::VolumeRecord;
use super::{Container, EngineError};

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn store_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("state store: {e}"))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, EngineError> {
        let db = Database::create(path).map_err(store_err)?;
        // Containers' environment (secrets included) is in there: root only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(store_err)?;
        let txn = db.begin_write().map_err(store_err)?;
        txn.open_table(CONTAINERS).map_err(store_err)?;
        txn.open_table(NETWORKS).map_err(store_err)?;
        txn.open_table(VOLUMES).map_err(store_err)?;
        txn.commit().map_err(store_err)?;
        Ok(Store { db })
    }

    /// Writes `value` as JSON under `key` in `table` (one transaction).
    fn put_json<T: serde::Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(value).map_err(store_err)?;
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(table).map_err(store_err)?;
            table.insert(key, bytes.as_slice()).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    fn delete_key(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(table).map_err(store_err)?;
            table.remove(key).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    /// Every record of `table`; unreadable ones are skipped with a message naming `what`.
    fn load_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        what: &str,
    ) -> Result<Vec<T>, EngineError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(table).map_err(store_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(store_err)? {
            let (_, value) = entry.map_err(store_err)?;
            match serde_json::from_slice::<T>(value.value()) {
                Ok(v) => out.push(v),
                Err(e) => eprintln!("pierd: skipping unreadable {what} record: {e}"),
            }
        }
        Ok(out)
    }

    pub fn put(&self, container: &Container) -> Result<(), EngineError> {
        self.put_json(CONTAINERS, &container.id, container)
    }

    pub fn delete(&self, id: &str) -> Result<(), EngineError> {
        self.delete_key(CONTAINERS, id)
    }

    pub fn put_network(&self, network: &Network) -> Result<(), EngineError> {
        self.put_json(NETWORKS, &network.id, network)
    }

    pub fn delete_network(&self, id: &str) -> Result<(), EngineError> {
        self.delete_key(NETWORKS, id)
    }

    pub fn load_networks(&self) -> Result<Vec<Network>, EngineError> {
        self.load_json(NETWORKS, "network")
    }

    pub fn load_all(&self) -> Result<Vec<Container>, EngineError> {
        self.load_json(CONTAINERS, "container")
    }

    /// Writes a volume's record.
    pub fn put_volume(&self, volume: &VolumeRecord) -> Result<(), EngineError> {
        self.put_json(VOLUMES, &volume.name, volume)
    }

    pub fn delete_volume(&self, name: &str) -> Result<(), EngineError> {
        self.delete_key(VOLUMES, name)
    }

    pub fn load_volumes(&self) -> Result<Vec<VolumeRecord>, EngineError> {
        self.load_json(VOLUMES, "volume")
    }
}
