-- Send a poll, or show a poll's votes.
--
--   psql "$PGWA_DATABASE_URL" -X -v session=salon-42 -v to=+5511999998888 \
--        -v question='Which day suits you?' -v options='Saturday,Sunday' [-v pick=1] -f poll.sql
--   psql "$PGWA_DATABASE_URL" -X -v poll_id=3EB0... -f poll.sql
--
-- Votes arrive opened by the worker (wa.inbox rows of kind poll_vote); wa.poll_results
-- counts each voter's latest vote per option.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?poll_id}
SELECT position, option, votes, voters
  FROM wa.poll_results WHERE poll_id = :'poll_id' ORDER BY position;
\else
\if :{?pick}
\else
\set pick 1
\endif
SELECT job_id, message_id AS poll_id
  FROM wa.send_poll(:'session', :'to', :'question', string_to_array(:'options', ','), :pick) \gset
\echo queued poll job :job_id message :poll_id
\echo its votes: psql -v poll_id=:poll_id -f poll.sql
\endif
