ALTER TABLE observations DROP COLUMN sender;
ALTER TABLE observations DROP COLUMN on_oxygen;
ALTER TABLE observations DROP COLUMN acvpu;
ALTER TABLE observations DROP COLUMN systolic;
