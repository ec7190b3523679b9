//! The daemon's state in an embedded transactional store (redb): one record per
//! container, written in one transaction per change, so a `kill -9` at any moment
//! leaves either the old or the new record.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::network::Network;
use super::{Container, EngineError};

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

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
        txn.commit().map_err(store_err)?;
        Ok(Store { db })
    }

    pub fn put(&self, container: &Container) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(container).map_err(store_err)?;
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(CONTAINERS).map_err(store_err)?;
            table
                .insert(container.id.as_str(), bytes.as_slice())
                .map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    pub fn delete(&self, id: &str) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(CONTAINERS).map_err(store_err)?;
            table.remove(id).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    pub fn put_network(&self, network: &Network) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(network).map_err(store_err)?;
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(NETWORKS).map_err(store_err)?;
            table
                .insert(network.id.as_str(), bytes.as_slice())
                .map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    pub fn delete_network(&self, id: &str) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(NETWORKS).map_err(store_err)?;
            table.remove(id).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    pub fn load_networks(&self) -> Result<Vec<Network>, EngineError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(NETWORKS).map_err(store_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(store_err)? {
            let (_, value) = entry.map_err(store_err)?;
            match serde_json::from_slice::<Network>(value.value()) {
                Ok(n) => out.push(n),
                Err(e) => eprintln!("pierd: skipping unreadable network record: {e}"),
            }
        }
        Ok(out)
    }

    pub fn load_all(&self) -> Result<Vec<Container>, EngineError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(CONTAINERS).map_err(store_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(store_err)? {
            let (_, value) = entry.map_err(store_err)?;
            match serde_json::from_slice::<Container>(value.value()) {
                Ok(c) => out.push(c),
                Err(e) => eprintln!("pierd: skipping unreadable container record: {e}"),
            }
        }
        Ok(out)
    }
}
