"""How validation values read in a log line and the report."""

from tunesmith.predict.validation_values import describe_validation


def test_describe_validation():
    assert describe_validation({"val_loss": 0.5, "val_accuracy": 0.75, "val_pearson": None}) == (
        "validation loss 0.5000, accuracy 0.7500, pearson n/a")
