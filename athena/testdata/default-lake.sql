-- output lake (file): schema auto, version 2
-- a local lake: Athena needs the files in S3; set athena.location to where they are copied
-- tag is an injected partition: every query must name it, WHERE tag = '...' (or IN ('...', ...));
-- without that Athena fails with CONSTRAINT_VIOLATION: For the injected projected partition column tag, ...
CREATE EXTERNAL TABLE IF NOT EXISTS `default`.`lake` (
  `time` timestamp,
  `container_id` string,
  `container_name` string,
  `source` string,
  `level` string,
  `status` bigint,
  `latency_ms` double,
  `user` string,
  `ok` boolean,
  `request` string,
  `time_` string,
  `_overflow` map<string,string>
)
PARTITIONED BY (
  `tag` string,
  `dt` string,
  `hour` int
)
STORED AS PARQUET
LOCATION 'file:///var/lib/maruta/lake/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.tag.type' = 'injected',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = 'NOW-5YEARS,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2'
);

-- default.lake: columns added after schema version 1 (now 2)
ALTER TABLE `default`.`lake` ADD COLUMNS (
  `user` string,
  `ok` boolean,
  `request` string,
  `time_` string
);
