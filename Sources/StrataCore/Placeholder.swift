public enum StrataCorePlaceholder {}
