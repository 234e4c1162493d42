-- Retention, dead jobs of every kind (pgwa_pg::maintenance). $1 seconds kept, $2 batch.
-- Each of the two finished-job indexes, oldest first; each steps only over what the
-- other rules keep longer than dead jobs (none with the default retention).
DELETE FROM wa.job_rows WHERE id IN (
    SELECT id FROM (
        (SELECT id FROM wa.job_rows
          WHERE phase = 2 AND kind = 'send' AND finished_at < now() - make_interval(secs => $1) AND state = 'dead'
          ORDER BY finished_at LIMIT $2)
        UNION ALL
        (SELECT id FROM wa.job_rows
          WHERE phase = 2 AND kind <> 'send' AND finished_at < now() - make_interval(secs => $1) AND state = 'dead'
          ORDER BY finished_at LIMIT $2)) d
     LIMIT $2)
