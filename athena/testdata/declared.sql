-- output audit (s3): schema declared, version 1
CREATE EXTERNAL TABLE IF NOT EXISTS `default`.`audit_events` (
  `time` timestamp,
  `user` string,
  `action` string,
  `status` int,
  `labels` map<string,string>,
  `detail` string,
  `at` timestamp,
  `extra` map<string,string>
)
PARTITIONED BY (
  `app` string,
  `dt` string
)
STORED AS PARQUET
LOCATION 's3://audit-replica/audit/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.app.type' = 'enum',
  'projection.app.values' = 'billing,login',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = 'NOW-5YEARS,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS'
);
