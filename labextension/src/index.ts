/**
 * Wires the SharingHub frontend into JupyterLab: the left-area sidebar, item views
 * and the MLflow tab, their commands (palette, launcher) and the settings.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, IFrame, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { IItemViewHost, ItemView } from './components/itemview';
import { createMlflowWidget } from './components/mlflow';
import { notifyError, SharingHubSidebar } from './components/sidebar';
import { mlflowUrl } from './links';
import { SharingHubModel } from './model';

const PLUGIN_ID = 'sharinghub-lab:plugin';

export namespace CommandIDs {
  export const openSidebar = 'sharinghub:open-sidebar';
  export const openItem = 'sharinghub:open-item';
  export const openMlflow = 'sharinghub:open-mlflow';
  export const refresh = 'sharinghub:refresh-catalog';
}

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="6" cy="12" r="3"/><circle cx="18" cy="6" r="3"/><circle cx="18" cy="18" r="3"/>' +
  '<path d="M8.6 10.7l6.8-3.4.9 1.8-6.8 3.4zM8.6 13.3l.9-1.8 6.8 3.4-.9 1.8z"/></g></svg>';

export const sharinghubIcon = new LabIcon({ name: 'sharinghub-lab:icon', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'SharingHub: browse the catalog, pull DVC versions, open MLflow.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [
    ICommandPalette,
    ILauncher,
    ILayoutRestorer,
    IDefaultFileBrowser,
    INotebookTracker,
    ISettingRegistry
  ],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
    browser: IDefaultFileBrowser | null,
    notebooks: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    let defaultFolder = '';
    // the first search waits for the settings (loadSettings only touches `model` after its await)
    const model = new SharingHubModel(loadSettings());
    const { commands, shell } = app;
    const items = new WidgetTracker<MainAreaWidget<ItemView>>({ namespace: 'sharinghub-item' });
    let mlflow: MainAreaWidget<IFrame> | null = null;

    /** Reads the settings now and on every change; settles once read (or failed). */
    async function loadSettings(): Promise<void> {
      if (!settingRegistry) {
        return;
      }
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        const read = () => {
          defaultFolder = String(settings.get('defaultFolder').composite ?? '');
          const pageSize = Number(settings.get('pageSize').composite) || 20;
          model.setPageSize(pageSize).catch(notifyError);
        };
        read();
        settings.changed.connect(read);
      } catch (reason) {
        console.warn('sharinghub-lab: settings not loaded', reason);
      }
    }

    const host: IItemViewHost = {
      rendermime,
      currentFolder: () => browser?.model.path ?? '',
      defaultFolder: () => defaultFolder,
      openFolder: async (path: string) => {
        if (!browser) {
          return;
        }
        await browser.model.cd(`/${path}`);
        shell.activateById(browser.id);
      },
      insertSnippet: (code: string) => {
        const panel = notebooks?.currentWidget;
        if (!panel) {
          return false;
        }
        const notebook = panel.content;
        NotebookActions.insertBelow(notebook);
        notebook.activeCell?.model.sharedModel.setSource(code);
        shell.activateById(panel.id);
        return true;
      },
      openItem: (id, collection) => void commands.execute(CommandIDs.openItem, { id, collection }),
      openMlflow: route => void commands.execute(CommandIDs.openMlflow, { route })
    };

    const sidebar = new SharingHubSidebar(model, item =>
      void commands.execute(CommandIDs.openItem, { id: item.id, collection: item.collection ?? '' })
    );
    sidebar.title.icon = sharinghubIcon;
    shell.add(sidebar, 'left', { rank: 300 });
    restorer?.add(sidebar, sidebar.id);
    let started = false;
    const start = () => {
      if (!started) {
        started = true;
        void sidebar.start();
      }
    };
    // load on first show, not at page load: a user who never opens it pays nothing
    if (sidebar.isVisible) {
      start();
    }
    shell.currentChanged?.connect(() => sidebar.isVisible && start());
    const visibility = new MutationObserver(() => sidebar.isVisible && start());
    visibility.observe(sidebar.node, { attributes: true, attributeFilter: ['class'] });

    commands.addCommand(CommandIDs.openSidebar, {
      label: 'SharingHub: Browse the Catalog',
      icon: sharinghubIcon,
      execute: () => {
        shell.activateById(sidebar.id);
        start();
      }
    });

    commands.addCommand(CommandIDs.openItem, {
      label: args => (args.id ? `SharingHub: Open ${args.id}` : 'SharingHub: Open Item'),
      execute: async args => {
        const id = String(args.id ?? '');
        const collection = String(args.collection ?? '');
        if (!id || !collection) {
          notifyError(new Error('an item needs an id and a collection'));
          return;
        }
        const open = items.find(w => w.content.itemId === id && w.content.collection === collection);
        if (open) {
          shell.activateById(open.id);
          return;
        }
        const view = new ItemView(collection, id, host);
        const widget = new MainAreaWidget({ content: view });
        widget.id = `sharinghub-item-${collection}-${id}`.replace(/[^\w-]/g, '_');
        widget.title.icon = sharinghubIcon;
        view.title.changed.connect(() => {
          widget.title.label = view.title.label;
          widget.title.caption = view.title.caption;
        });
        widget.title.label = view.title.label;
        widget.title.caption = id;
        void items.add(widget);
        shell.add(widget, 'main');
        shell.activateById(widget.id);
        await view.load();
      }
    });

    commands.addCommand(CommandIDs.openMlflow, {
      label: 'Open MLflow',
      caption: 'The MLflow tracking UI of this server',
      icon: sharinghubIcon,
      execute: args => {
        const route = String(args.route ?? '');
        if (mlflow && !mlflow.isDisposed) {
          if (route) {
            mlflow.content.url = mlflowUrl(route);
          }
          shell.activateById(mlflow.id);
          return;
        }
        mlflow = createMlflowWidget(route);
        shell.add(mlflow, 'main');
        shell.activateById(mlflow.id);
      }
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'SharingHub: Refresh Catalog',
      execute: () => sidebar.refresh()
    });

    for (const command of Object.values(CommandIDs)) {
      if (command !== CommandIDs.openItem) {
        palette?.addItem({ command, category: 'SharingHub' });
      }
    }
    launcher?.add({ command: CommandIDs.openMlflow, category: 'Other', rank: 1 });
  }
};

export default plugin;
