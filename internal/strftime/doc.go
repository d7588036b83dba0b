// Package strftime renders times with strftime directives, as fluentd's
// Ruby does (Time#strftime): the paths and object keys of outputs, and the
// time_format of JSON lines. Times are rendered in UTC.
//
// Directives: %Y %C %y %m %d %e %j %H %k %I %l %M %S %L %N %s %b %h %B %a %A
// %u %w %p %z %Z %F %T %D %R, %% for a '%'; in a Format also %3N, %6N, %9N
// (the first digits of the nanoseconds).
//
// Imports: internal/event only.
package strftime
