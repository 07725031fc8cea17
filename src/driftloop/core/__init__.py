"""Config, clock, ids, the metadata store and the artifact store."""
