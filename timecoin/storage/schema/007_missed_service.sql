-- timecoin schema version 7: the reason a masternode is deactivated.
-- missed_service is 1 for a masternode a block deactivated for missed
-- service (absent from the carried commits of MISSED_SERVICE_BLOCKS
-- consecutive blocks): it rejoins by announcing again, not after
-- DEACTIVATION_BLOCKS as one deactivated on evidence does. Rows of version 6
-- were all deactivated on evidence (0).
ALTER TABLE masternodes ADD COLUMN missed_service INTEGER NOT NULL DEFAULT 0;
