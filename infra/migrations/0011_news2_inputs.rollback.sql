ALTER TABLE observations DROP COLUMN client_organisation;
ALTER TABLE observations DROP COLUMN client_id;
ALTER TABLE observations DROP COLUMN on_oxygen;
ALTER TABLE observations DROP COLUMN acvpu;
ALTER TABLE observations DROP COLUMN systolic;
