from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def classification_metrics(task: str, model: str, results: Input[Dataset], curves: Output[ClassificationMetrics]):
    """ROC curve and confusion matrix of one classification or multilabel probe task, drawn natively by the UI.

    The pipeline makes one such task per classification / multilabel task of its compiled params (kfp fixes the
    number of outputs at compile time). ``results`` is the probe output folder; the curve is from its seed-0
    test predictions of ``model``, the matrix at the threshold chosen on the val rows. A task the run's params
    dropped, or with one class in the test rows, logs nothing and says why in the metadata.
    """
    from isoclr import classification

    shown, about = classification.folder_view(results.path, task, model)
    curves.metadata["about"] = about
    if shown is not None:
        curves.log_roc_curve(shown.fpr, shown.tpr, shown.thresholds)
        curves.log_confusion_matrix(list(shown.categories), shown.matrix)
        curves.metadata["thresholds"] = shown.thresholds_used
