-- Everything a session's device knows, the auth document included (pgwa_pg::keys::cleanup::
-- wipe_session_state): every per-session key table, in one statement. $1 session.
-- tests/store_sweep_cleanup.rs checks that every wa table holding a session's keys is here.
WITH signal_identities AS (DELETE FROM wa.signal_identities WHERE session_id = $1 RETURNING 1),
     signal_sessions AS (DELETE FROM wa.signal_sessions WHERE session_id = $1 RETURNING 1),
     signal_prekeys AS (DELETE FROM wa.signal_prekeys WHERE session_id = $1 RETURNING 1),
     signal_signed_prekeys AS (DELETE FROM wa.signal_signed_prekeys WHERE session_id = $1 RETURNING 1),
     signal_sender_keys AS (DELETE FROM wa.signal_sender_keys WHERE session_id = $1 RETURNING 1),
     app_state_sync_keys AS (DELETE FROM wa.app_state_sync_keys WHERE session_id = $1 RETURNING 1),
     app_state_versions AS (DELETE FROM wa.app_state_versions WHERE session_id = $1 RETURNING 1),
     app_state_mutation_macs AS (DELETE FROM wa.app_state_mutation_macs WHERE session_id = $1 RETURNING 1),
     sender_key_devices AS (DELETE FROM wa.sender_key_devices WHERE session_id = $1 RETURNING 1),
     lid_mappings AS (DELETE FROM wa.lid_mappings WHERE session_id = $1 RETURNING 1),
     base_keys AS (DELETE FROM wa.base_keys WHERE session_id = $1 RETURNING 1),
     device_lists AS (DELETE FROM wa.device_lists WHERE session_id = $1 RETURNING 1),
     group_metadata AS (DELETE FROM wa.group_metadata WHERE session_id = $1 RETURNING 1),
     tc_tokens AS (DELETE FROM wa.tc_tokens WHERE session_id = $1 RETURNING 1),
     sent_messages AS (DELETE FROM wa.sent_messages WHERE session_id = $1 RETURNING 1),
     pending_inbound AS (DELETE FROM wa.pending_inbound WHERE session_id = $1 RETURNING 1),
     msg_secrets AS (DELETE FROM wa.msg_secrets WHERE session_id = $1 RETURNING 1),
     auth_state AS (DELETE FROM wa.auth_state WHERE session_id = $1 RETURNING 1)
SELECT (SELECT count(*) FROM signal_identities)
     + (SELECT count(*) FROM signal_sessions)
     + (SELECT count(*) FROM signal_prekeys)
     + (SELECT count(*) FROM signal_signed_prekeys)
     + (SELECT count(*) FROM signal_sender_keys)
     + (SELECT count(*) FROM app_state_sync_keys)
     + (SELECT count(*) FROM app_state_versions)
     + (SELECT count(*) FROM app_state_mutation_macs)
     + (SELECT count(*) FROM sender_key_devices)
     + (SELECT count(*) FROM lid_mappings)
     + (SELECT count(*) FROM base_keys)
     + (SELECT count(*) FROM device_lists)
     + (SELECT count(*) FROM group_metadata)
     + (SELECT count(*) FROM tc_tokens)
     + (SELECT count(*) FROM sent_messages)
     + (SELECT count(*) FROM pending_inbound)
     + (SELECT count(*) FROM msg_secrets)
     + (SELECT count(*) FROM auth_state) AS "removed!"
