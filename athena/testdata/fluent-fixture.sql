-- output events_0 (s3): schema auto, version 3
-- event_type is an injected partition: every query must name it, WHERE event_type = '...' (or IN ('...', ...));
-- without that Athena fails with CONSTRAINT_VIOLATION: For the injected projected partition column event_type, ...
CREATE EXTERNAL TABLE IF NOT EXISTS `shop`.`shop_events` (
  `time` timestamp,
  `log_type` string,
  `event_type_` string,
  `order_id` bigint,
  `amount` double,
  `items` string,
  `coupon` string,
  `_overflow` map<string,string>
)
PARTITIONED BY (
  `event_type` string,
  `dt` string
)
STORED AS PARQUET
LOCATION 's3://shop-bucket/logs/shop-event/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_type.type' = 'injected',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy/MM/dd/HH',
  'projection.dt.range' = 'NOW-5YEARS,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'HOURS',
  'storage.location.template' = 's3://shop-bucket/logs/shop-event/${event_type}/${dt}/'
);

-- shop.shop_events: columns added after schema version 2 (now 3)
ALTER TABLE `shop`.`shop_events` ADD COLUMNS (
  `items` string,
  `coupon` string
);
