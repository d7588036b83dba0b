-- output docker-logs (s3): schema auto, version 0
-- tag is an injected partition: every query must name it, WHERE tag = '...' (or IN ('...', ...));
-- without that Athena fails with CONSTRAINT_VIOLATION: For the injected projected partition column tag, ...
CREATE EXTERNAL TABLE IF NOT EXISTS `logs`.`docker_logs` (
  `time` timestamp,
  `_overflow` map<string,string>
)
PARTITIONED BY (
  `tag` string,
  `dt` string,
  `hour` int
)
STORED AS PARQUET
LOCATION 's3://my-logs/'
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
