public enum StrataRedisPlaceholder {}
