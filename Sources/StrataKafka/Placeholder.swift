public enum StrataKafkaPlaceholder {}
