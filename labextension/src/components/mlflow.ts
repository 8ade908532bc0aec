/** The MLflow UI (served by the server extension at `sharinghub/mlflow/`) in a tab. */
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';

import { mlflowUrl } from '../links';

/**
 * The iframe needs scripts and its own origin (same as Jupyter's): MLflow's UI calls
 * its `ajax-api` with the Jupyter cookie.
 */
export function createMlflowWidget(route = ''): MainAreaWidget<IFrame> {
  const frame = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups', 'allow-downloads'],
    referrerPolicy: 'same-origin'
  });
  frame.url = mlflowUrl(route);
  const widget = new MainAreaWidget({ content: frame });
  widget.id = 'sharinghub-mlflow';
  widget.title.label = 'MLflow';
  widget.title.closable = true;
  widget.addClass('jp-SharingHub-mlflow');
  return widget;
}
